//! The runtime's errors. Each carries the engine's own message, because that is what an
//! administrator searches for, and names the object it is about.

/// What went wrong talking to a container engine.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The socket is missing, refuses connections, or the engine did not answer in time.
    #[error("cannot reach the container engine at {socket}: {message}")]
    Unreachable { socket: String, message: String },
    #[error("image {image} not found: {message}")]
    ImageNotFound { image: String, message: String },
    #[error("container {container} not found: {message}")]
    ContainerNotFound { container: String, message: String },
    #[error("network {network} not found: {message}")]
    NetworkNotFound { network: String, message: String },
    #[error("volume {volume} not found: {message}")]
    VolumeNotFound { volume: String, message: String },
    #[error("swarm service {service} not found: {message}")]
    ServiceNotFound { service: String, message: String },
    #[error("swarm node {node} not found: {message}")]
    NodeNotFound { node: String, message: String },
    #[error("container name {name} is already in use: {message}")]
    NameInUse { name: String, message: String },
    #[error("{} is already in use: {message}", port_text(*port))]
    PortInUse { port: Option<u16>, message: String },
    /// The kernel killed the container (or its init) for exceeding its memory limit.
    #[error("container {container} ran out of memory: {message}")]
    OutOfMemory { container: String, message: String },
    /// A Dockerfile step failed; `output` holds that step's last lines of output.
    #[error("{}", build_failed_text(*step, *total, instruction, message, output))]
    BuildFailed {
        step: u32,
        total: u32,
        instruction: String,
        message: String,
        output: Vec<String>,
    },
    /// A build step was killed under the build's memory limit: it used more than that.
    #[error(
        "{}",
        build_killed_text(*step, *total, instruction, *limit_bytes, output)
    )]
    BuildOutOfMemory {
        step: u32,
        total: u32,
        instruction: String,
        limit_bytes: u64,
        output: Vec<String>,
    },
    /// The build ran past its time limit and was abandoned.
    #[error("the build took longer than its time limit of {} s", limit.as_secs())]
    BuildTimedOut { limit: std::time::Duration },
    /// Any other refusal, with the HTTP status the engine answered.
    #[error("the container engine refused ({status}): {message}")]
    Engine { status: u16, message: String },
    /// The engine answered something Rivetr cannot read.
    #[error("unexpected answer from the container engine: {0}")]
    Protocol(String),
    /// A request Rivetr refuses before sending it.
    #[error("invalid request: {0}")]
    Invalid(String),
}

fn port_text(port: Option<u16>) -> String {
    match port {
        Some(p) => format!("host port 127.0.0.1:{p}"),
        None => "the host port".to_owned(),
    }
}

fn build_failed_text(
    step: u32,
    total: u32,
    instruction: &str,
    message: &str,
    output: &[String],
) -> String {
    let mut text = if step == 0 {
        format!("build failed before its first step: {message}")
    } else {
        format!("build failed at step {step}/{total} ({instruction}): {message}")
    };
    if !output.is_empty() {
        text.push_str("\noutput of the step:");
        for line in output {
            text.push_str("\n  ");
            text.push_str(line);
        }
    }
    text
}

fn build_killed_text(
    step: u32,
    total: u32,
    instruction: &str,
    limit_bytes: u64,
    output: &[String],
) -> String {
    let limit = crate::limits::human_bytes(limit_bytes);
    let mut text = format!(
        "build step {step}/{total} ({instruction}) was killed for using more than the build memory limit of {limit}"
    );
    if !output.is_empty() {
        text.push_str("\noutput of the step:");
        for line in output {
            text.push_str("\n  ");
            text.push_str(line);
        }
    }
    text
}

/// What a failed request was about, to name the right thing in the error.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    Image(&'a str),
    Container(&'a str),
    /// Creating or starting a container: name, and the fixed host port if one was asked for.
    Run {
        name: &'a str,
        image: &'a str,
        port: Option<u16>,
    },
    Network(&'a str),
    Volume(&'a str),
    Service(&'a str),
    Node(&'a str),
    Engine,
}

/// A [`Subject`] that owns its name, for errors raised after the call that named it (a
/// stream's later items).
#[derive(Debug, Clone)]
pub(crate) enum OwnedSubject {
    Container(String),
    Service(String),
}

impl OwnedSubject {
    pub(crate) fn borrow(&self) -> Subject<'_> {
        match self {
            OwnedSubject::Container(c) => Subject::Container(c),
            OwnedSubject::Service(s) => Subject::Service(s),
        }
    }
}

impl RuntimeError {
    /// Classifies an engine's refusal by its status and its own message.
    pub(crate) fn from_engine(status: u16, message: String, subject: Subject<'_>) -> RuntimeError {
        let lower = message.to_ascii_lowercase();
        let port_taken =
            lower.contains("address already in use") || lower.contains("port is already allocated");
        let no_such_image = lower.contains("no such image")
            || lower.contains("image not known")
            || lower.contains("image not found");
        match subject {
            Subject::Run { port, .. } if port_taken => RuntimeError::PortInUse { port, message },
            Subject::Run { name, .. }
                if lower.contains("oom") || lower.contains("out of memory") =>
            {
                RuntimeError::OutOfMemory {
                    container: name.to_owned(),
                    message,
                }
            }
            Subject::Run { name, .. }
                if status == 409
                    || lower.contains("already in use")
                    || lower.contains("is in use") =>
            {
                RuntimeError::NameInUse {
                    name: name.to_owned(),
                    message,
                }
            }
            Subject::Run { image, .. }
                if no_such_image || (status == 404 && lower.contains("image")) =>
            {
                RuntimeError::ImageNotFound {
                    image: image.to_owned(),
                    message,
                }
            }
            Subject::Run { name, .. } if status == 404 => RuntimeError::ContainerNotFound {
                container: name.to_owned(),
                message,
            },
            Subject::Image(image) if status == 404 || no_such_image => {
                RuntimeError::ImageNotFound {
                    image: image.to_owned(),
                    message,
                }
            }
            // Podman answers 500 "container <id> does not exist in database: no such
            // container" when the container went between its lookup and the operation.
            Subject::Container(container)
                if status == 404 || (status == 500 && lower.ends_with("no such container")) =>
            {
                RuntimeError::ContainerNotFound {
                    container: container.to_owned(),
                    message,
                }
            }
            Subject::Network(network) if status == 404 => RuntimeError::NetworkNotFound {
                network: network.to_owned(),
                message,
            },
            Subject::Volume(volume) if status == 404 => RuntimeError::VolumeNotFound {
                volume: volume.to_owned(),
                message,
            },
            Subject::Service(service) if status == 404 => RuntimeError::ServiceNotFound {
                service: service.to_owned(),
                message,
            },
            Subject::Node(node) if status == 404 => RuntimeError::NodeNotFound {
                node: node.to_owned(),
                message,
            },
            _ => RuntimeError::Engine { status, message },
        }
    }

    /// Converts a bollard error about `subject` on the engine at `socket`.
    pub(crate) fn from_bollard(
        error: bollard::errors::Error,
        socket: &str,
        subject: Subject<'_>,
    ) -> RuntimeError {
        use bollard::errors::Error as B;
        match error {
            B::DockerResponseServerError {
                status_code,
                message,
            } => RuntimeError::from_engine(status_code, message, subject),
            B::RequestTimeoutError => RuntimeError::Unreachable {
                socket: socket.to_owned(),
                message: "no answer in time".to_owned(),
            },
            e @ (B::SocketNotFoundError(_)
            | B::IOError { .. }
            | B::HyperResponseError { .. }
            | B::HyperLegacyError { .. }) => RuntimeError::Unreachable {
                socket: socket.to_owned(),
                message: e.to_string(),
            },
            e @ (B::JsonDataError { .. } | B::JsonSerdeError { .. }) => {
                RuntimeError::Protocol(e.to_string())
            }
            e => RuntimeError::Protocol(e.to_string()),
        }
    }

    /// True for "it is not there", whichever kind of object.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            RuntimeError::ImageNotFound { .. }
                | RuntimeError::ContainerNotFound { .. }
                | RuntimeError::NetworkNotFound { .. }
                | RuntimeError::VolumeNotFound { .. }
                | RuntimeError::ServiceNotFound { .. }
                | RuntimeError::NodeNotFound { .. }
        )
    }
}

/// Replaces every environment value found in `message` by `***`, so an engine that echoes
/// part of a request cannot leak a secret into Rivetr's errors and logs.
pub(crate) fn redact(message: String, env: &[(String, String)]) -> String {
    env.iter()
        // Very short values would blank out ordinary words; they are not secrets anyway.
        .filter(|(_, v)| v.len() >= 4)
        .fold(message, |m, (_, v)| m.replace(v.as_str(), "***"))
}

impl RuntimeError {
    /// [`redact`] applied to the message this error carries.
    pub(crate) fn redacted(self, env: &[(String, String)]) -> RuntimeError {
        let r = |m: String| redact(m, env);
        match self {
            RuntimeError::Unreachable { socket, message } => RuntimeError::Unreachable {
                socket,
                message: r(message),
            },
            RuntimeError::ImageNotFound { image, message } => RuntimeError::ImageNotFound {
                image,
                message: r(message),
            },
            RuntimeError::ContainerNotFound { container, message } => {
                RuntimeError::ContainerNotFound {
                    container,
                    message: r(message),
                }
            }
            RuntimeError::NameInUse { name, message } => RuntimeError::NameInUse {
                name,
                message: r(message),
            },
            RuntimeError::PortInUse { port, message } => RuntimeError::PortInUse {
                port,
                message: r(message),
            },
            RuntimeError::OutOfMemory { container, message } => RuntimeError::OutOfMemory {
                container,
                message: r(message),
            },
            RuntimeError::Engine { status, message } => RuntimeError::Engine {
                status,
                message: r(message),
            },
            RuntimeError::Protocol(m) => RuntimeError::Protocol(r(m)),
            other => other,
        }
    }
}

/// For `tracing` fields that want a short kind rather than the whole message.
impl RuntimeError {
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeError::Unreachable { .. } => "unreachable",
            RuntimeError::ImageNotFound { .. } => "image_not_found",
            RuntimeError::ContainerNotFound { .. } => "container_not_found",
            RuntimeError::NetworkNotFound { .. } => "network_not_found",
            RuntimeError::VolumeNotFound { .. } => "volume_not_found",
            RuntimeError::ServiceNotFound { .. } => "service_not_found",
            RuntimeError::NodeNotFound { .. } => "node_not_found",
            RuntimeError::NameInUse { .. } => "name_in_use",
            RuntimeError::PortInUse { .. } => "port_in_use",
            RuntimeError::OutOfMemory { .. } => "out_of_memory",
            RuntimeError::BuildFailed { .. } => "build_failed",
            RuntimeError::BuildOutOfMemory { .. } => "build_out_of_memory",
            RuntimeError::BuildTimedOut { .. } => "build_timed_out",
            RuntimeError::Engine { .. } => "engine",
            RuntimeError::Protocol(_) => "protocol",
            RuntimeError::Invalid(_) => "invalid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_taken_is_port_in_use_with_the_engines_words() {
        let msg = "rootlessport listen tcp 127.0.0.1:8123: bind: address already in use";
        let e = RuntimeError::from_engine(
            500,
            msg.to_owned(),
            Subject::Run {
                name: "web",
                image: "img",
                port: Some(8123),
            },
        );
        assert!(
            matches!(
                e,
                RuntimeError::PortInUse {
                    port: Some(8123),
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(msg), "{e}");
    }

    #[test]
    fn missing_image_is_image_not_found() {
        let e = RuntimeError::from_engine(
            404,
            "No such image: localhost/nope:1".to_owned(),
            Subject::Run {
                name: "web",
                image: "localhost/nope:1",
                port: None,
            },
        );
        assert!(matches!(e, RuntimeError::ImageNotFound { .. }), "{e}");
        assert!(e.to_string().contains("localhost/nope:1"), "{e}");
    }

    #[test]
    fn build_failure_names_step_and_shows_output() {
        let e = RuntimeError::BuildFailed {
            step: 3,
            total: 4,
            instruction: "RUN make".into(),
            message: "exit status 2".into(),
            output: vec!["make: *** no rule".into()],
        };
        let text = e.to_string();
        assert!(text.contains("step 3/4 (RUN make)"), "{text}");
        assert!(text.contains("make: *** no rule"), "{text}");
    }

    #[test]
    fn redaction_removes_env_values() {
        let env = vec![("TOKEN".to_owned(), "s3cr3t-value".to_owned())];
        let e = RuntimeError::Engine {
            status: 500,
            message: "bad env TOKEN=s3cr3t-value".into(),
        }
        .redacted(&env);
        assert_eq!(
            e.to_string(),
            "the container engine refused (500): bad env TOKEN=***"
        );
    }
}
