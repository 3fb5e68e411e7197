//! Request in, reply out: the mi_http rules with no socket and no host, so they are testable alone.

/// The MI engine as the handler calls it: one JSON-RPC request in, the reply JSON out, `None` for
/// a notification. In the daemon this is `Host::mi_execute`.
pub type MiFn = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

/// An HTTP reply before it is put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    /// The `Allow` header (405 only).
    pub allow: Option<&'static str>,
    pub body: Vec<u8>,
}

impl Reply {
    /// 200 with the JSON-RPC reply: also for JSON-RPC errors, as OpenSIPS does.
    pub fn json(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            content_type: Some("application/json"),
            allow: None,
            body,
        }
    }

    /// 202, empty: the request was a notification, so there is no JSON-RPC reply.
    pub fn accepted() -> Reply {
        Reply {
            status: 202,
            content_type: None,
            allow: None,
            body: Vec::new(),
        }
    }

    /// An error status with a one-line plain-text explanation.
    pub fn text(status: u16, msg: &str) -> Reply {
        Reply {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            allow: None,
            body: format!("{msg}\n").into_bytes(),
        }
    }

    /// The reply for a request the HTTP layer refused with `status` (malformed, unsupported...).
    pub fn refused(status: u16) -> Reply {
        Reply::text(status, crate::http::reason(status))
    }
}

/// Where MI is served and how large a request may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The `root` modparam without surrounding slashes (`"mi"` serves `/mi` and `/mi/...`).
    root: String,
    max_body: usize,
    /// The bearer token requests must carry (`auth_token`).
    token: Option<String>,
}

impl Endpoint {
    /// `root` may be given with or without slashes (`"mi"`, `"/mi/"`); an empty root serves every
    /// path.
    pub fn new(root: &str, max_body: usize) -> Endpoint {
        Endpoint {
            root: root.trim_matches('/').to_string(),
            max_body,
            token: None,
        }
    }

    /// Require `Authorization: Bearer <token>` on every request (`None`: no authentication).
    pub fn with_token(mut self, token: Option<String>) -> Endpoint {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// 401 unless the request carries the configured bearer token. The comparison takes the
    /// same time wherever the first difference is, so the token cannot be guessed byte by byte.
    pub fn authorize(&self, header: Option<&str>) -> Result<(), Reply> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("")
            .trim();
        let same = given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(Reply::text(
                401,
                "missing or wrong bearer token (Authorization: Bearer ...)",
            ))
        }
    }

    /// The root without slashes.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The largest body accepted, in bytes.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Whether the request target is `/<root>` or under `/<root>/` (query string ignored).
    pub fn path_matches(&self, target: &str) -> bool {
        let path = target.split(['?', '#']).next().unwrap_or("");
        // An absolute-form target (`http://host/mi`) is legal in a request line (RFC 9112 §3.2.2).
        let path = match path.find("://") {
            Some(i)
                if path[..i].eq_ignore_ascii_case("http")
                    || path[..i].eq_ignore_ascii_case("https") =>
            {
                let rest = &path[i + 3..];
                rest.find('/').map_or("/", |j| &rest[j..])
            }
            _ => path,
        };
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        match rest.strip_prefix(self.root.as_str()) {
            Some(after) => self.root.is_empty() || after.is_empty() || after.starts_with('/'),
            None => false,
        }
    }

    /// The checks that need no body: 404 for another path, 405 for a method other than POST.
    /// The HTTP layer runs them before reading a body it would refuse anyway.
    pub fn check(&self, method: &str, target: &str) -> Result<(), Reply> {
        if method == "GET" && is_metrics(target) {
            return Ok(());
        }
        if !self.path_matches(target) {
            return Err(Reply::text(
                404,
                &format!("no MI here: POST JSON-RPC requests to /{}", self.root),
            ));
        }
        if method != "POST" {
            let mut r = Reply::text(405, "MI requests must be sent with POST");
            r.allow = Some("POST");
            return Err(r);
        }
        Ok(())
    }

    /// 413, for a body over `max_body`.
    pub fn too_large(&self) -> Reply {
        Reply::text(
            413,
            &format!("request body is larger than {} bytes", self.max_body),
        )
    }

    /// What to answer a request whose body is known to be over the limit: the body-less checks
    /// still come first, so a wrong path stays a 404 whatever its size.
    pub fn refuse_too_large(&self, method: &str, target: &str) -> Reply {
        self.check(method, target)
            .err()
            .unwrap_or_else(|| self.too_large())
    }

    /// Handle one request: route, validate, run the MI request through `mi`, map its outcome.
    pub fn handle(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        mi: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    ) -> Reply {
        if let Err(r) = self.check(method, target) {
            return r;
        }
        if method == "GET" && is_metrics(target) {
            return crate::metrics::render(mi);
        }
        if body.len() > self.max_body {
            return self.too_large();
        }
        if body.is_empty() {
            return Reply::text(400, "empty body: expected a JSON-RPC request");
        }
        match mi(body) {
            // OpenSIPS answers 500 when no reply could be built; an empty reply is that case.
            Some(reply) if reply.is_empty() => Reply::text(500, "the MI engine returned no reply"),
            Some(reply) => Reply::json(reply),
            None => Reply::accepted(),
        }
    }
}

/// `GET /metrics` (query ignored) serves Prometheus, whatever the MI root.
fn is_metrics(target: &str) -> bool {
    target.split(['?', '#']).next() == Some(crate::metrics::PATH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const REQ: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"events_list"}"#;
    const RES: &[u8] = br#"{"jsonrpc":"2.0","result":{"Events":[]},"id":1}"#;

    /// A fake engine: replies unless the request has no `"id"` (a notification).
    fn fake(req: &[u8]) -> Option<Vec<u8>> {
        let text = String::from_utf8_lossy(req);
        text.contains("\"id\"").then(|| RES.to_vec())
    }

    fn never(_: &[u8]) -> Option<Vec<u8>> {
        panic!("MI must not be called")
    }

    fn ep() -> Endpoint {
        Endpoint::new("mi", 1024)
    }

    #[test]
    fn reply_is_200_json() {
        let r = ep().handle("POST", "/mi", REQ, &fake);
        assert_eq!(r, Reply::json(RES.to_vec()));
        assert_eq!(r.content_type, Some("application/json"));
    }

    #[test]
    fn passes_the_body_through_unchanged() {
        let seen = RefCell::new(Vec::new());
        let mi = |b: &[u8]| {
            seen.borrow_mut().extend_from_slice(b);
            Some(b"{}".to_vec())
        };
        ep().handle("POST", "/mi", b"not json", &mi);
        assert_eq!(seen.into_inner(), b"not json");
    }

    #[test]
    fn notification_is_202_empty() {
        let r = ep().handle(
            "POST",
            "/mi",
            br#"{"jsonrpc":"2.0","method":"events_list"}"#,
            &fake,
        );
        assert_eq!(r.status, 202);
        assert!(r.body.is_empty());
        assert_eq!(r.content_type, None);
    }

    #[test]
    fn empty_engine_reply_is_500() {
        assert_eq!(
            ep().handle("POST", "/mi", REQ, &|_| Some(Vec::new()))
                .status,
            500
        );
    }

    #[test]
    fn path_matching() {
        let e = ep();
        for ok in [
            "/mi",
            "/mi/",
            "/mi/x/y",
            "/mi?a=b",
            "/mi/?a",
            "/mi#f",
            "http://h:1/mi",
            "HTTPS://h/mi/x",
        ] {
            assert!(e.path_matches(ok), "{ok}");
        }
        for bad in [
            "/",
            "",
            "mi",
            "/m",
            "/mi2",
            "/mix/",
            "/MI",
            "//mi",
            "/x/mi",
            "*",
            "http://h",
            "ftp://h/mi",
        ] {
            assert!(!e.path_matches(bad), "{bad}");
        }
        assert!(Endpoint::new("/api/mi/", 1024).path_matches("/api/mi/cmd"));
        assert_eq!(Endpoint::new("/api/mi/", 1024).root(), "api/mi");
        assert!(Endpoint::new("", 1024).path_matches("/anything"));
    }

    #[test]
    fn wrong_path_is_404() {
        let r = ep().handle("POST", "/other", REQ, &never);
        assert_eq!(r.status, 404);
        assert_eq!(r.content_type, Some("text/plain; charset=utf-8"));
        assert!(!r.body.is_empty());
        // The path is checked before the method.
        assert_eq!(ep().handle("GET", "/other", b"", &never).status, 404);
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        for m in ["GET", "PUT", "HEAD", "DELETE", "OPTIONS", "post"] {
            let r = ep().handle(m, "/mi", REQ, &never);
            assert_eq!(r.status, 405, "{m}");
            assert_eq!(r.allow, Some("POST"));
        }
    }

    #[test]
    fn empty_body_is_400() {
        assert_eq!(ep().handle("POST", "/mi", b"", &never).status, 400);
    }

    #[test]
    fn body_over_max_is_413() {
        let e = Endpoint::new("mi", 4);
        assert_eq!(e.handle("POST", "/mi", b"12345", &never).status, 413);
        assert_eq!(
            e.handle("POST", "/mi", b"1234", &|_| Some(b"{}".to_vec()))
                .status,
            200
        );
        assert_eq!(e.refuse_too_large("POST", "/mi").status, 413);
        assert_eq!(e.refuse_too_large("GET", "/mi").status, 405);
        assert_eq!(e.refuse_too_large("POST", "/x").status, 404);
    }

    #[test]
    fn refused_statuses_have_a_text_body() {
        let r = Reply::refused(431);
        assert_eq!(r.body, b"Request Header Fields Too Large\n");
    }
}
