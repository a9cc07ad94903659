//! Which git URLs Rivetr clones, and how it reaches each: the one place that decides, used by
//! the API (which refuses the others with 422) and by the clone (which picks its credentials
//! by transport).
//!
//! Accepted: `https://`, `ssh://` (and git's `git+ssh://` spellings), scp-like
//! `user@host:path`, `git://`, `file://` and absolute local paths. Refused: anything git would
//! hand to a remote helper (`ext::sh -c ...`, `fd::`, `<name>::<address>`, or an unknown
//! `<name>://` scheme, which runs `git-remote-<name>`), plain `http://` (the repository and
//! any credential would cross the network unencrypted), relative paths, and anything that
//! could be read as an option.
//!
//! The messages never repeat the URL: it may carry a credential.

/// How git reaches a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Https,
    Ssh,
    /// The unauthenticated `git://` daemon protocol.
    Git,
    /// A repository on this machine (`file://` or an absolute path).
    File,
}

/// The schemes git may use, as `GIT_ALLOW_PROTOCOL` takes them.
pub const ALLOWED_PROTOCOLS: &str = "https:ssh:git:file";

/// Why a URL is refused; the message names what is wrong and says what to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(pub String);

const EXPECTED: &str =
    "give an https://, ssh:// or file:// URL, `user@host:path`, or an absolute local path";

/// The transport of `url`, or why Rivetr will not clone it.
pub fn transport(url: &str) -> Result<Transport, UrlError> {
    if url.is_empty() {
        return Err(UrlError(format!("empty; {EXPECTED}")));
    }
    if url.starts_with('-') {
        return Err(UrlError(format!(
            "starts with `-` and would be read as an option; {EXPECTED}"
        )));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError(format!(
            "contains whitespace or control characters; {EXPECTED}"
        )));
    }
    if let Some(helper) = remote_helper(url) {
        return Err(UrlError(format!(
            "`{helper}::` asks git to run the remote helper `git-remote-{helper}` (with `ext::`, any \
             command); Rivetr does not run remote helpers; {EXPECTED}"
        )));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "https" => Transport::Https,
            "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
            "git" => Transport::Git,
            "file" => Transport::File,
            "http" => {
                return Err(UrlError(
                    "plain http:// sends the repository and any credential unencrypted; use https://"
                        .to_owned(),
                ));
            }
            other => {
                return Err(UrlError(format!(
                    "the scheme `{other}://` would make git run the remote helper \
                     `git-remote-{other}`; {EXPECTED}"
                )));
            }
        };
        let host = authority_host(rest);
        if transport != Transport::File && host.is_empty() {
            return Err(UrlError(format!("names no host; {EXPECTED}")));
        }
        if host.starts_with('-') {
            return Err(UrlError(format!(
                "the host `{host}` starts with `-` and would be read as an option"
            )));
        }
        return Ok(transport);
    }
    if url.starts_with('/') {
        return Ok(Transport::File);
    }
    if let Some((user_host, path)) = scp_like(url) {
        let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
        if host.is_empty() || host.starts_with('-') || path.is_empty() {
            return Err(UrlError(format!("is not `user@host:path`; {EXPECTED}")));
        }
        return Ok(Transport::Ssh);
    }
    Err(UrlError(format!("is not a URL git can clone; {EXPECTED}")))
}

/// The name of the remote helper `url` asks for with git's `<name>::<address>` syntax.
fn remote_helper(url: &str) -> Option<&str> {
    // git's own rule (transport.c): a run of URL-scheme characters, then `::`.
    let end = url
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_alphabetic() || (i > 0 && (c.is_ascii_digit() || "+.-".contains(c))))
        })
        .map_or(url.len(), |(i, _)| i);
    (end > 0 && url[end..].starts_with("::")).then(|| &url[..end])
}

/// `[user@]host:path` where no `/` comes before the first `:`, and a user is given (Rivetr
/// asks for one so that `C:` or `name:thing` typos are not taken for hosts).
fn scp_like(url: &str) -> Option<(&str, &str)> {
    let colon = url.find(':')?;
    let slash = url.find('/').unwrap_or(usize::MAX);
    if slash < colon || !url[..colon].contains('@') {
        return None;
    }
    Some((&url[..colon], &url[colon + 1..]))
}

/// The host of `user@host:port/path` (the part after `scheme://`), without user or port.
fn authority_host(rest: &str) -> &str {
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(bracketed) = host_port.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or("");
    }
    host_port.split(':').next().unwrap_or("")
}

/// The `host[:port]` of an https URL as git's credential protocol names it (`host=`), in
/// lower case; `None` for other URLs.
pub fn https_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_urls_and_their_transports() {
        for (url, t) in [
            ("https://github.com/me/app.git", Transport::Https),
            ("HTTPS://github.com/me/app.git", Transport::Https),
            ("ssh://git@github.com/me/app.git", Transport::Ssh),
            ("ssh://git@[::1]:2222/srv/app.git", Transport::Ssh),
            ("git+ssh://git@host/app.git", Transport::Ssh),
            ("git@github.com:me/app.git", Transport::Ssh),
            ("git@[::1]:me/app.git", Transport::Ssh),
            ("git://git.example.org/app.git", Transport::Git),
            ("file:///srv/git/app", Transport::File),
            ("/srv/git/app", Transport::File),
        ] {
            assert_eq!(transport(url), Ok(t), "{url}");
        }
    }

    #[test]
    fn helpers_and_unsupported_urls_are_refused_with_a_reason() {
        for (url, says) in [
            ("ext::sh -c touch% /tmp/pwned", "whitespace"),
            ("ext::touch@x:y", "`ext::`"),
            ("fd::17", "`fd::`"),
            ("testgit::/srv/repo", "git-remote-testgit"),
            (
                "persistent-https://host/repo",
                "git-remote-persistent-https",
            ),
            ("http://github.com/me/app", "unencrypted"),
            ("https:///no-host", "no host"),
            ("ssh://-oProxyCommand=x/app", "starts with `-`"),
            ("git@-oProxyCommand=x:app", "not `user@host:path`"),
            ("-u/tmp/x", "option"),
            ("relative/path", "not a URL"),
            ("host:path", "not a URL"),
            ("", "empty"),
        ] {
            let err = transport(url).expect_err(url).0;
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn https_hosts_as_git_names_them() {
        assert_eq!(
            https_host("https://Git.Example.com:8443/a/b.git").as_deref(),
            Some("git.example.com:8443")
        );
        assert_eq!(https_host("https://u:p@host/a").as_deref(), Some("host"));
        assert_eq!(https_host("ssh://git@host/a"), None);
    }
}
