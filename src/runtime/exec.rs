//! Commands run inside a running container: a database's readiness probe, its dump tool
//! (streamed out frame by frame, never held whole) and its restore tool (fed on stdin).

use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;

use super::compat::{CALL_TIMEOUT, Compat};
use super::error::Subject;
use super::{ExecSession, ExecSpec, LogSource, RuntimeError};

impl Compat {
    pub(crate) async fn exec_start(
        &self,
        container: &str,
        spec: &ExecSpec,
    ) -> Result<ExecSession, RuntimeError> {
        if spec.cmd.is_empty() {
            return Err(RuntimeError::Invalid("exec needs a command".to_owned()));
        }
        let options = CreateExecOptions::<String> {
            attach_stdin: Some(spec.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: Some(spec.cmd.clone()),
            user: spec.user.clone(),
            ..CreateExecOptions::default()
        };
        let created = self
            .call(
                CALL_TIMEOUT,
                Subject::Container(container),
                self.docker.create_exec(container, options),
            )
            .await
            .map_err(|e| e.redacted(&spec.env))?;
        let started = self
            .call(
                CALL_TIMEOUT,
                Subject::Container(container),
                self.docker.start_exec(
                    &created.id,
                    Some(StartExecOptions {
                        detach: false,
                        tty: false,
                        output_capacity: Some(64 * 1024),
                    }),
                ),
            )
            .await?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::Protocol(
                "the engine started the command detached".to_owned(),
            ));
        };
        let socket = self.socket.clone();
        let name = container.to_owned();
        let output = output
            .filter_map(move |item| {
                let frame = match item {
                    Ok(bollard::container::LogOutput::StdOut { message })
                    | Ok(bollard::container::LogOutput::Console { message }) => {
                        Some(Ok((LogSource::Stdout, message)))
                    }
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        Some(Ok((LogSource::Stderr, message)))
                    }
                    Ok(bollard::container::LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(RuntimeError::from_bollard(
                        e,
                        &socket,
                        Subject::Container(&name),
                    ))),
                };
                std::future::ready(frame)
            })
            .boxed();
        Ok(ExecSession {
            id: created.id,
            output,
            input: spec.stdin.then_some(input),
        })
    }

    /// The command's exit code once it has ended; `None` while it runs.
    pub(crate) async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        let inspect = self
            .call(
                CALL_TIMEOUT,
                Subject::Engine,
                self.docker.inspect_exec(exec_id),
            )
            .await?;
        if inspect.running.unwrap_or(false) {
            return Ok(None);
        }
        Ok(inspect.exit_code)
    }
}

/// The most output [`collect`] keeps of each stream; more is dropped from the front.
pub const EXEC_OUTPUT_LIMIT: usize = 64 * 1024;

/// Reads a session's output to its end within `limit`, keeping the last
/// [`EXEC_OUTPUT_LIMIT`] bytes of each stream: (stdout, stderr).
pub(crate) async fn collect(
    output: &mut super::ExecOutputStream,
    limit: Duration,
) -> Result<(String, String), RuntimeError> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let read = async {
        while let Some(frame) = output.next().await {
            let (source, bytes) = frame?;
            let buffer = match source {
                LogSource::Stdout => &mut stdout,
                LogSource::Stderr => &mut stderr,
            };
            buffer.extend_from_slice(&bytes);
            if buffer.len() > EXEC_OUTPUT_LIMIT {
                buffer.drain(..buffer.len() - EXEC_OUTPUT_LIMIT);
            }
        }
        Ok::<(), RuntimeError>(())
    };
    match tokio::time::timeout(limit, read).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(RuntimeError::Engine {
                status: 408,
                message: format!("the command did not finish within {limit:?}"),
            });
        }
    }
    Ok((
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    ))
}
