//! The framework-neutral request model and the pieces of its target URI that
//! derived components (RFC 9421 section 2.2) are made from.

/// A request as the signature code sees it.
///
/// `target_uri` is the absolute target URI (`https://host[:port]/path?query`),
/// as the client sent it or as the server reconstructs it from its public
/// base URL and the request target. `headers` holds every field line in
/// order; names are matched case-insensitively. `body` is the content, or
/// `None` when the caller checks `Content-Digest` itself (e.g. while
/// streaming a large upload).
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    pub target_uri: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// A request without headers or body.
    pub fn new(method: &'a str, target_uri: &'a str) -> Self {
        Self {
            method,
            target_uri,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds one field line.
    #[must_use]
    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sets the content.
    #[must_use]
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = Some(body);
        self
    }

    /// The values of every field line named `name` (case-insensitive), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// All lines of a field combined as HTTP allows (RFC 9110 section 5.3):
    /// each value trimmed of surrounding whitespace, joined with `", "`.
    /// `None` when the field is absent.
    pub(crate) fn combined_header(&self, name: &str) -> Option<String> {
        let mut values = self.header_values(name).peekable();
        values.peek()?;
        Some(
            values
                .map(|v| v.trim_matches([' ', '\t']))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

/// The parts of an absolute `http`/`https` URI that derived components use.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TargetUri<'a> {
    pub full: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

impl<'a> TargetUri<'a> {
    /// Splits `scheme://authority/path?query#fragment` (RFC 3986 section 3).
    /// Returns `None` for anything that is not an absolute URI with an
    /// authority.
    pub fn parse(uri: &'a str) -> Option<Self> {
        let (scheme, rest) = uri.split_once("://")?;
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return None;
        }
        let full = uri.split_once('#').map_or(uri, |(u, _)| u);
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(auth_end);
        if authority.is_empty() || uri.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return None;
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        Some(Self {
            full,
            scheme,
            authority,
            path,
            query,
        })
    }

    /// `@target-uri`: the URI as given, less any fragment (RFC 9421 section 2.2.2).
    pub fn without_fragment(&self) -> &'a str {
        self.full
    }

    /// `@scheme`: the scheme in lowercase (RFC 9421 section 2.2.4).
    pub fn scheme(&self) -> String {
        self.scheme.to_ascii_lowercase()
    }

    /// `@authority`: host in lowercase, default port removed (RFC 9421
    /// section 2.2.3, RFC 9110 section 4.2.3). Userinfo is dropped: it is not
    /// part of an HTTP authority.
    pub fn authority(&self) -> String {
        let host_port = self
            .authority
            .rsplit_once('@')
            .map_or(self.authority, |(_, h)| h);
        let lower = host_port.to_ascii_lowercase();
        let default_port = match self.scheme().as_str() {
            "https" => Some(":443"),
            "http" => Some(":80"),
            _ => None,
        };
        match default_port {
            // An IPv6 literal ends with ']' so a bare ":443" suffix is always a port.
            Some(port) if lower.ends_with(port) => lower[..lower.len() - port.len()].to_owned(),
            _ => lower,
        }
    }

    /// `@path`: the absolute path, `/` when empty (RFC 9421 section 2.2.6).
    pub fn path(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            self.path
        }
    }

    /// `@query`: `?` followed by the query, `?` alone when there is none
    /// (RFC 9421 section 2.2.7).
    pub fn query(&self) -> String {
        format!("?{}", self.query.unwrap_or(""))
    }

    /// `@request-target` in origin form (RFC 9421 section 2.2.5): path and
    /// query as they appear on the request line.
    pub fn request_target(&self) -> String {
        match self.query {
            Some(q) => format!("{}?{}", self.path(), q),
            None => self.path().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_uri_splits_into_its_parts() {
        let u = TargetUri::parse("https://Example.COM:443/foo?param=Value&Pet=dog#frag").unwrap();
        assert_eq!(u.scheme(), "https");
        assert_eq!(u.authority(), "example.com");
        assert_eq!(u.path(), "/foo");
        assert_eq!(u.query(), "?param=Value&Pet=dog");
        assert_eq!(u.request_target(), "/foo?param=Value&Pet=dog");
    }

    #[test]
    fn an_empty_path_and_missing_query_are_normalised() {
        let u = TargetUri::parse("http://www.example.com:8080").unwrap();
        assert_eq!(u.authority(), "www.example.com:8080");
        assert_eq!(u.path(), "/");
        assert_eq!(u.query(), "?");
        assert_eq!(u.request_target(), "/");
    }

    #[test]
    fn a_non_default_port_is_kept_and_http_default_is_dropped() {
        assert_eq!(
            TargetUri::parse("https://a.example:8443/")
                .unwrap()
                .authority(),
            "a.example:8443"
        );
        assert_eq!(
            TargetUri::parse("http://a.example:80/")
                .unwrap()
                .authority(),
            "a.example"
        );
        assert_eq!(
            TargetUri::parse("http://[::1]:80/").unwrap().authority(),
            "[::1]"
        );
    }

    #[test]
    fn relative_or_broken_uris_are_refused() {
        assert!(TargetUri::parse("/foo").is_none());
        assert!(TargetUri::parse("https:///foo").is_none());
        assert!(TargetUri::parse("1ttp://a/").is_none());
        assert!(TargetUri::parse("https://a/b c").is_none());
    }

    #[test]
    fn header_lines_are_trimmed_and_joined() {
        let r = Request::new("GET", "https://a/")
            .header("X-Multi", " one ")
            .header("x-multi", "two\t");
        assert_eq!(r.combined_header("X-MULTI").as_deref(), Some("one, two"));
        assert_eq!(r.combined_header("absent"), None);
    }
}
