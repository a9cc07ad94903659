//! Reading a build's output as the engines stream it: whole lines out of arbitrary chunks,
//! which step is running, which steps came from the cache, and what the failing step printed.
//!
//! Docker says `Step 2/4 : RUN ...` and ` ---> Using cache`; Podman says `STEP 2/4: RUN ...`
//! and `--> Using cache <id>`. Docker splits a step's header from its newline and wraps
//! stderr in colour codes; both are undone here.

use std::collections::VecDeque;

use super::RuntimeError;

/// Lines of a failing step's output kept for the error.
const KEPT_LINES: usize = 40;

#[derive(Debug, Default)]
pub(crate) struct BuildProgress {
    partial: String,
    pub(crate) step: u32,
    pub(crate) total: u32,
    instruction: String,
    step_output: VecDeque<String>,
    pub(crate) cached: u32,
}

impl BuildProgress {
    /// Takes a chunk of the stream; calls `on_line` for each line it completes.
    pub(crate) fn feed(&mut self, chunk: &str, on_line: &mut (dyn for<'l> FnMut(&'l str) + Send)) {
        self.partial.push_str(chunk);
        while let Some(end) = self.partial.find('\n') {
            let raw: String = self.partial.drain(..=end).collect();
            self.line(&raw, on_line);
        }
    }

    /// Delivers what is left after the stream ended without a final newline.
    pub(crate) fn finish(&mut self, on_line: &mut (dyn for<'l> FnMut(&'l str) + Send)) {
        if !self.partial.is_empty() {
            let raw = std::mem::take(&mut self.partial);
            self.line(&raw, on_line);
        }
    }

    fn line(&mut self, raw: &str, on_line: &mut (dyn for<'l> FnMut(&'l str) + Send)) {
        let line = strip_ansi(raw.trim_end_matches(['\n', '\r']));
        on_line(&line);
        if let Some((step, total, instruction)) = parse_step(&line) {
            self.step = step;
            self.total = total;
            self.instruction = instruction;
            self.step_output.clear();
        } else if line.contains("Using cache") {
            self.cached += 1;
        } else if !is_bookkeeping(&line) {
            if self.step_output.len() == KEPT_LINES {
                self.step_output.pop_front();
            }
            self.step_output.push_back(line);
        }
    }

    /// The error for a build the engine reported failed with `message`.
    pub(crate) fn failure(&mut self, message: &str) -> RuntimeError {
        let mut sink = |_: &str| {};
        self.finish(&mut sink);
        RuntimeError::BuildFailed {
            step: self.step,
            total: self.total,
            instruction: self.instruction.clone(),
            message: message.trim().to_owned(),
            output: self.step_output.iter().cloned().collect(),
        }
    }
}

impl BuildProgress {
    /// The error for a failed build that ran under a memory limit: a step the kernel killed
    /// ran out of that memory. Docker says `returned a non-zero code: 137` (128 + SIGKILL);
    /// Podman prints `container exited on killed` and fails with `exit status 1`.
    pub(crate) fn failure_under_memory_limit(
        &mut self,
        message: &str,
        limit_bytes: u64,
    ) -> RuntimeError {
        let killed = message.contains("non-zero code: 137")
            || message.contains("exit status 137")
            || message.contains("signal: killed")
            || self
                .step_output
                .iter()
                .any(|l| l.contains("container exited on killed"));
        let failure = self.failure(message);
        match failure {
            RuntimeError::BuildFailed {
                step,
                total,
                instruction,
                output,
                ..
            } if killed && step > 0 => RuntimeError::BuildOutOfMemory {
                step,
                total,
                instruction,
                limit_bytes,
                output,
            },
            other => other,
        }
    }
}

/// `Step 2/4 : RUN x` (Docker) or `STEP 2/4: RUN x` (Podman) -> (2, 4, "RUN x").
fn parse_step(line: &str) -> Option<(u32, u32, String)> {
    let rest = line
        .strip_prefix("Step ")
        .or_else(|| line.strip_prefix("STEP "))?;
    let (counts, instruction) = rest.split_once(':')?;
    let (step, total) = counts.trim().split_once('/')?;
    Some((
        step.parse().ok()?,
        total.parse().ok()?,
        instruction.trim().to_owned(),
    ))
}

/// The engine's own progress lines, which are not output of the step's command.
fn is_bookkeeping(line: &str) -> bool {
    let t = line.trim();
    t.is_empty()
        || t.starts_with("--->")
        || t.starts_with("-->")
        || t.starts_with("Removing intermediate container")
        || t.starts_with("COMMIT ")
        || t.starts_with("Successfully built")
        || t.starts_with("Successfully tagged")
        || (t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&str]) -> (BuildProgress, Vec<String>) {
        let mut p = BuildProgress::default();
        let mut lines = Vec::new();
        let mut on_line = |l: &str| lines.push(l.to_owned());
        for c in chunks {
            p.feed(c, &mut on_line);
        }
        p.finish(&mut on_line);
        (p, lines)
    }

    #[test]
    fn docker_failure_names_step_and_keeps_output() {
        // As Docker 20.10 streams it.
        let (mut p, lines) = run(&[
            "Step 1/4 : FROM localhost/busybox:test",
            "\n",
            " ---> 5c2a183e57b4\n",
            "Step 3/4 : RUN echo out; echo err >&2; exit 3",
            "\n",
            " ---> Running in fddec588a37a\n",
            "out\n",
            "\u{1b}[91merr\n\u{1b}[0m",
        ]);
        assert!(lines.contains(&"Step 3/4 : RUN echo out; echo err >&2; exit 3".to_owned()));
        let e = p.failure("The command '/bin/sh -c ...' returned a non-zero code: 3");
        let RuntimeError::BuildFailed {
            step,
            total,
            instruction,
            output,
            ..
        } = e
        else {
            panic!("{e}")
        };
        assert_eq!((step, total), (3, 4));
        assert_eq!(instruction, "RUN echo out; echo err >&2; exit 3");
        assert_eq!(output, vec!["out".to_owned(), "err".to_owned()]);
    }

    #[test]
    fn podman_cache_hits_are_counted() {
        let (p, _) = run(&[
            "STEP 1/3: FROM localhost/busybox:test\n",
            "STEP 2/3: RUN echo hi\n",
            "--> Using cache 4149fb265128fb3d4d4f17477fab579e4f4edf3e29250f59a807d1493d3d60f1\n",
            "--> 4149fb26512\n",
            "STEP 3/3: COPY a /a\n",
            "--> Using cache 0a6403582e76d74f01dbd5de960dbb0d1ffd65b0ac9a47e0bf078ede0472229a\n",
            "COMMIT localhost/x:1\n",
            "c32181a9e9b87199c6b427a85c2e7c96d80e5efdcc0c6275375e5761aa46d861\n",
        ]);
        assert_eq!((p.step, p.total, p.cached), (3, 3, 2));
        assert!(p.step_output.is_empty(), "{:?}", p.step_output);
    }

    #[test]
    fn a_killed_step_under_a_memory_limit_says_so() {
        let (mut p, _) = run(&[
            "STEP 1/2: FROM localhost/busybox:test\n",
            "STEP 2/2: RUN x=$(head -c 400000000 /dev/zero)\n",
            "allocating\n",
            "container exited on killed\n",
        ]);
        let e = p.failure_under_memory_limit(
            "building at STEP \"RUN ...\": while running runtime: exit status 1",
            64 << 20,
        );
        assert!(
            matches!(e, RuntimeError::BuildOutOfMemory { step: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("memory limit of 64 MiB"), "{e}");
        let (mut p, _) = run(&["Step 2/2 : RUN x", "\n", "allocating\n"]);
        let e = p.failure_under_memory_limit(
            "The command '/bin/sh -c x' returned a non-zero code: 137",
            1 << 30,
        );
        assert!(e.to_string().contains("memory limit of 1 GiB"), "{e}");
        // An ordinary failure stays one.
        let (mut p, _) = run(&["Step 2/2 : RUN false", "\n"]);
        let e = p.failure_under_memory_limit(
            "The command '/bin/sh -c false' returned a non-zero code: 1",
            1 << 30,
        );
        assert!(matches!(e, RuntimeError::BuildFailed { .. }), "{e}");
    }

    #[test]
    fn failure_before_any_step() {
        let (mut p, _) = run(&[]);
        let e = p.failure("Cannot locate specified Dockerfile: Dockerfile");
        assert!(
            e.to_string()
                .starts_with("build failed before its first step: Cannot locate"),
            "{e}"
        );
    }
}
