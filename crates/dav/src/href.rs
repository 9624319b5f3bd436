//! Hrefs: resolved against the request URL and percent-decoded, so two spellings of one
//! resource (`/a%40b/` and `/a@b/`, relative and absolute) compare equal.

use std::fmt;

/// The address of a DAV resource: an absolute `http(s)` URL without query or fragment, its
/// path percent-decoded and re-encoded in one canonical way.
///
/// Built by [`Href::parse`] (absolute URL) or [`Href::resolve`] (an `<href>` from a
/// response, relative to the request's URL). Compare hrefs with `==`: the canonical form
/// makes different spellings of one path equal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Href {
    /// `scheme://host[:port]`, lower-case, without user information.
    origin: String,
    /// The percent-decoded path.
    path: String,
}

impl Href {
    /// Parses an absolute `http` or `https` URL. User information, query and fragment are
    /// dropped.
    pub fn parse(url: &str) -> Option<Href> {
        let parsed = reqwest::Url::parse(url).ok()?;
        Self::from_url(&parsed)
    }

    /// Resolves `href` (as found in a `<DAV:href>`: absolute, absolute path or relative)
    /// against `base`.
    pub fn resolve(base: &Href, href: &str) -> Option<Href> {
        let base = reqwest::Url::parse(&base.url()).ok()?;
        let joined = base.join(href.trim()).ok()?;
        Self::from_url(&joined)
    }

    pub(crate) fn from_url(url: &reqwest::Url) -> Option<Href> {
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        let host = url.host_str()?;
        let origin = match url.port() {
            Some(port) => format!("{}://{}:{port}", url.scheme(), host.to_ascii_lowercase()),
            None => format!("{}://{}", url.scheme(), host.to_ascii_lowercase()),
        };
        Some(Href {
            origin,
            path: percent_decode(url.path()),
        })
    }

    /// The percent-decoded path, e.g. `/alice/contacts/a b.vcf`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The path percent-encoded canonically (as sent in requests and `<href>` elements).
    pub fn encoded_path(&self) -> String {
        percent_encode_path(&self.path)
    }

    /// The full URL, canonically encoded.
    pub fn url(&self) -> String {
        format!("{}{}", self.origin, self.encoded_path())
    }

    /// True when this is a collection's href (the path ends with `/`).
    pub fn is_collection(&self) -> bool {
        self.path.ends_with('/')
    }

    /// The same href with a trailing `/` (collections are compared with one).
    pub(crate) fn as_collection(&self) -> Href {
        let mut h = self.clone();
        if !h.path.ends_with('/') {
            h.path.push('/');
        }
        h
    }
}

impl fmt::Debug for Href {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Href({})", self.url())
    }
}

impl fmt::Display for Href {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

/// Decodes `%XX` escapes; invalid escapes stay as they are, invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| char::from(b).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a decoded path: unreserved characters, sub-delimiters, `:`, `@` and `/` stay,
/// everything else becomes `%XX` (upper case).
pub(crate) fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL shown in errors and logs: without user information, query or fragment (they may
/// hold secrets).
pub(crate) fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => Href::from_url(&u).map_or_else(|| u.origin().ascii_serialization(), |h| h.url()),
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_path_are_equal() {
        let base = Href::parse("https://dav.example.com/dav/alice/").unwrap();
        let a = Href::resolve(&base, "/dav/alice/a%40b%20c.vcf").unwrap();
        let b = Href::resolve(&base, "a@b c.vcf").unwrap();
        let c = Href::resolve(&base, "https://DAV.example.com/dav/alice/a%40b%20c.vcf").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.path(), "/dav/alice/a@b c.vcf");
        assert_eq!(a.url(), "https://dav.example.com/dav/alice/a@b%20c.vcf");
        assert!(!a.is_collection());
        assert!(base.is_collection());
    }

    #[test]
    fn user_info_query_and_fragment_are_dropped() {
        let h = Href::parse("https://bob:secret@example.com:8443/x/?token=abc#f").unwrap();
        assert_eq!(h.url(), "https://example.com:8443/x/");
        assert_eq!(
            display_url("https://bob:secret@example.com/x?token=abc"),
            "https://example.com/x"
        );
        assert!(Href::parse("ftp://example.com/").is_none());
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz%41"), "a%zzA");
        assert_eq!(percent_decode("%E2%82%AC"), "€");
    }
}
