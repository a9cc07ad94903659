//! Host names: normalising the `Host` of a request and validating the hosts routes are for.
//!
//! A leaf module: the configuration ([`crate::config`]), the API (app domains), the engine
//! (app routes) and the proxy (request routing) all speak of hosts the same way, and none of
//! them has to import another for it.

/// The host of a request in the form routes are keyed by: lower case, without a port and
/// without a trailing dot. `None` for something that cannot be a host name.
pub fn normalize(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal: "[::1]:8080".
        let end = rest.find(']')?;
        &raw[..end + 2]
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Checks a host a route is declared for: a DNS name (`app.example.com`) or a wildcard over
/// one (`*.example.com`). Returns it lower-cased.
pub fn validate_route_host(host: &str) -> Result<String, String> {
    let lower = host.trim().to_ascii_lowercase();
    let name = lower.strip_prefix("*.").unwrap_or(&lower);
    if name.is_empty() || name.len() > 253 {
        return Err(format!("`{host}` is not a host name"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "`{host}` is not a host name (label `{label}`: letters, digits and inner hyphens, 1 to 63 characters)"
            ));
        }
    }
    if lower.starts_with("*.") && !name.contains('.') {
        return Err(format!(
            "`{host}`: a wildcard needs at least two labels after `*.`"
        ));
    }
    Ok(lower)
}

/// True for `*.example.com`-style hosts.
pub fn is_wildcard(host: &str) -> bool {
    host.starts_with("*.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_ports_case_and_trailing_dots() {
        assert_eq!(
            normalize("App.Example.COM:8080").unwrap(),
            "app.example.com"
        );
        assert_eq!(normalize("app.example.com.").unwrap(), "app.example.com");
        assert_eq!(normalize("[::1]:80").unwrap(), "[::1]");
        assert_eq!(normalize("127.0.0.1").unwrap(), "127.0.0.1");
        assert!(normalize("").is_none());
    }

    #[test]
    fn validates_route_hosts() {
        assert_eq!(
            validate_route_host("A.example.com").unwrap(),
            "a.example.com"
        );
        assert_eq!(
            validate_route_host("*.example.com").unwrap(),
            "*.example.com"
        );
        assert!(validate_route_host("*.com").is_err());
        assert!(validate_route_host("a..b").is_err());
        assert!(validate_route_host("-a.b").is_err());
        assert!(validate_route_host("a b.c").is_err());
        assert!(validate_route_host("a.*.c").is_err());
    }
}
