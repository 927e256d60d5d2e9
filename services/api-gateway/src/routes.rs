//! Route prefixes and the table that finds the most specific one for a path.
//!
//! Why a module of its own: matching is the rule clients, services and (with issue 4) the
//! authentication policy all depend on, so it lives in one small place with its own tests.
//!
//! Syntax: a prefix is `/` or `/`-separated segments, each a literal (`users`) or `*`, which
//! stands for exactly one non-empty segment. A prefix matches a path when the path's first segments
//! match it one for one; the path may continue below it. Matching is on the path as sent
//! (percent-encoded, case-sensitive), like the services' own routers.
//!
//! Most specific wins: more segments first; among as many segments, at the first position where
//! they differ, a literal beats `*`; then an exact pattern (a module route) beats a prefix, and a
//! pattern for some methods beats one for all. That order is total for distinct patterns, so the
//! winner never depends on the order of the configuration.
//!
//! Module routes (from manifests, `gateway.modules`) are patterns of their own kind: exact (the
//! path must end where the pattern ends) and for one method (`GET` also answering `HEAD`). A
//! request whose path such routes match but whose method none of them answers, and which no other
//! route takes, is told which methods the path has (405 with `Allow`).

use std::cmp::Ordering;

use http::Method;
use keel_module::{ModuleSet, PathSegment};

use crate::config::{GatewayConfig, RouteConfig};
use crate::policy;

/// One segment of a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this text (never containing `/`: `Pattern::matched_len` compares it in
    /// place, up to the next `/`).
    Literal(Box<str>),
    /// `*`: matches any one non-empty segment.
    Any,
}

/// A parsed prefix, or a module route's exact path and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    segments: Box<[Segment]>,
    /// Whether the path must end where the pattern ends (a module route), rather than may go on
    /// below it (a configured prefix).
    exact: bool,
    /// The methods it answers; `None`: every method.
    methods: Option<Box<[Method]>>,
}

impl Pattern {
    /// Parses a prefix, or says what is wrong with it.
    pub(crate) fn parse(prefix: &str) -> Result<Self, String> {
        let Some(body) = prefix.strip_prefix('/') else {
            return Err("must start with `/`".to_owned());
        };
        if body.is_empty() {
            return Ok(Self::prefix(Box::new([])));
        }
        if body.ends_with('/') {
            return Err("must not end with `/` (a prefix already matches everything below it)".to_owned());
        }
        let segments = body.split('/').map(parse_segment).collect::<Result<_, _>>()?;
        Ok(Self::prefix(segments))
    }

    fn prefix(segments: Box<[Segment]>) -> Self {
        Self {
            segments,
            exact: false,
            methods: None,
        }
    }

    /// The exact pattern of a module route: its path's segments (parameters as `*`), for its
    /// method (`GET` with `HEAD`).
    fn module_route(route: &keel_module::RouteSpec) -> Self {
        let segments = route
            .path()
            .segments()
            .iter()
            .map(|segment| match segment {
                PathSegment::Literal(text) => {
                    debug_assert!(!text.contains('/'), "a path segment: {text}");
                    Segment::Literal(text.as_str().into())
                }
                PathSegment::Param(_) => Segment::Any,
            })
            .collect();
        let methods: Box<[Method]> = match route.method() {
            keel_module::Method::Get => Box::new([Method::GET, Method::HEAD]),
            keel_module::Method::Post => Box::new([Method::POST]),
            keel_module::Method::Put => Box::new([Method::PUT]),
            keel_module::Method::Patch => Box::new([Method::PATCH]),
            keel_module::Method::Delete => Box::new([Method::DELETE]),
        };
        Self {
            segments,
            exact: true,
            methods: Some(methods),
        }
    }

    /// Whether it answers `method`.
    fn accepts(&self, method: &Method) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.contains(method))
    }

    /// Length in bytes of the part of `path` this prefix matches, or `None` when it does not match.
    /// The rest of the path, `&path[len..]`, is empty or starts with `/`.
    pub(crate) fn matched_len(&self, path: &str) -> Option<usize> {
        let mut position = 0;
        for segment in &self.segments {
            let rest = path.get(position..)?.strip_prefix('/')?;
            let len = match segment {
                // The literal, then the end of the segment: compared in place, not split off.
                Segment::Literal(literal) => {
                    let after = rest.strip_prefix(&**literal)?;
                    if !(after.is_empty() || after.starts_with('/')) {
                        return None;
                    }
                    literal.len()
                }
                Segment::Any => match memchr::memchr(b'/', rest.as_bytes()).unwrap_or(rest.len()) {
                    0 => return None,
                    len => len,
                },
            };
            position += 1 + len;
        }
        match self.exact && position != path.len() {
            true => None,
            false => Some(position),
        }
    }

    /// Orders the more specific of two patterns first (see the module documentation).
    fn specificity(&self, other: &Self) -> Ordering {
        other
            .segments
            .len()
            .cmp(&self.segments.len())
            .then_with(|| {
                self.segments
                    .iter()
                    .zip(other.segments.iter())
                    .map(|pair| match pair {
                        (Segment::Literal(_), Segment::Any) => Ordering::Less,
                        (Segment::Any, Segment::Literal(_)) => Ordering::Greater,
                        (Segment::Literal(_), Segment::Literal(_)) | (Segment::Any, Segment::Any) => {
                            Ordering::Equal
                        }
                    })
                    .find(|order| order.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
            .then_with(|| other.exact.cmp(&self.exact))
            .then_with(|| other.methods.is_some().cmp(&self.methods.is_some()))
    }
}

fn parse_segment(segment: &str) -> Result<Segment, String> {
    const ALLOWED: &str = "-._~!$&'()+,;=:@%";
    match segment {
        "" => Err("has an empty segment (`//`)".to_owned()),
        "*" => Ok(Segment::Any),
        "." | ".." => Err(format!("has a dot segment `{segment}`")),
        _ if segment.contains('*') => Err(format!(
            "segment `{segment}`: `*` must be a whole segment, standing for one path segment"
        )),
        _ if segment.starts_with('{') => Err(format!("segment `{segment}`: write a variable segment as `*`")),
        _ if !segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ALLOWED.contains(c)) =>
        {
            Err(format!(
                "segment `{segment}` has a character not allowed in a URL path"
            ))
        }
        _ => Ok(Segment::Literal(segment.into())),
    }
}

/// Whether `path` has a `.` or `..` segment, plain or percent-encoded. Such paths are refused at
/// the edge: a service's router does not resolve them, so the route they seem to name and the one
/// that would serve them could differ.
pub(crate) fn has_dot_segment(path: &str) -> bool {
    // Most paths have neither a dot nor an escape: one (vectorised) scan of the bytes says so.
    if memchr::memchr2(b'.', b'%', path.as_bytes()).is_none() {
        return false;
    }
    path.split('/').any(|segment| match segment.contains('%') {
        // Decoding allocates, so only for the rare segment with an escape.
        true => matches!(
            segment.to_ascii_lowercase().replace("%2e", ".").as_str(),
            "." | ".."
        ),
        false => segment == "." || segment == "..",
    })
}

/// Routes ordered most specific first, each with its `T` (its configuration, later its upstream).
#[derive(Debug)]
pub(crate) struct RouteTable<T> {
    routes: Vec<(Pattern, T)>,
}

impl RouteTable<RouteConfig> {
    /// Parses and checks `config.routes`; every problem found, each naming its key.
    pub(crate) fn parse(config: &GatewayConfig) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut routes: Vec<(Pattern, RouteConfig)> = Vec::new();
        let mut seen: Vec<(Pattern, usize)> = Vec::new();
        for (index, route) in config.routes.iter().enumerate() {
            let key = format!("gateway.routes[{index}]");
            if route.service.is_empty() || route.service.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                problems.push(format!(
                    "{key}.service `{}` must be a registry service name, e.g. identity",
                    route.service
                ));
            }
            if route.timeout_ms == Some(0) {
                problems.push(format!("{key}.timeout_ms must be greater than 0"));
            }
            problems.extend(policy::problems(&key, route));
            match Pattern::parse(&route.prefix) {
                Err(reason) => problems.push(format!("{key}.prefix `{}` {reason}", route.prefix)),
                Ok(pattern) => {
                    if let Some((_, first)) = seen.iter().find(|(known, _)| *known == pattern) {
                        problems.push(format!(
                            "{key}.prefix `{}` repeats the prefix of gateway.routes[{first}]",
                            route.prefix
                        ));
                    }
                    seen.push((pattern.clone(), index));
                    routes.push((pattern, route.clone()));
                }
            }
        }
        match config.modules.resolve() {
            Err(problem) => problems.push(format!("gateway.modules: {problem}")),
            Ok(modules) => {
                problems.extend(namespace_overlaps(config, &routes, &modules));
                routes.extend(module_routes(config, &modules, &mut problems));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self::from_entries(routes))
    }
}

/// Configured routes inside a module's namespace (`/api/v<N>/<module>`, the first three segments
/// of its routes): a module route there would take requests from the configured route, or the
/// other way round, so the configuration is refused. Broader prefixes (`/`, `/api`) are fine: a
/// module's exact routes are more specific.
fn namespace_overlaps(
    config: &GatewayConfig,
    configured: &[(Pattern, RouteConfig)],
    modules: &ModuleSet,
) -> Vec<String> {
    let mut problems = Vec::new();
    for module in modules.iter() {
        let mut namespaces: Vec<[&str; 3]> = Vec::new();
        for spec in module.routes() {
            if let [
                PathSegment::Literal(api),
                PathSegment::Literal(version),
                PathSegment::Literal(name),
                ..,
            ] = spec.path().segments()
            {
                let namespace = [api.as_str(), version.as_str(), name.as_str()];
                if !namespaces.contains(&namespace) {
                    namespaces.push(namespace);
                }
            }
        }
        for namespace in namespaces {
            for (pattern, route) in configured {
                let inside = pattern.segments.len() >= 3
                    && pattern
                        .segments
                        .iter()
                        .zip(namespace)
                        .all(|(segment, name)| match segment {
                            Segment::Literal(literal) => **literal == *name,
                            Segment::Any => true,
                        });
                if inside {
                    let index = config
                        .routes
                        .iter()
                        .position(|candidate| candidate == route)
                        .unwrap_or_default();
                    problems.push(format!(
                        "gateway.modules: module `{}` routes under /{}, where gateway.routes[{index}] (`{}`) routes too",
                        module.name(),
                        namespace.join("/"),
                        route.prefix
                    ));
                }
            }
        }
    }
    problems
}

/// The routes `modules` declare, each a route to `gateway.modules.host` labelled with its method
/// and path (`GET /api/v1/blog/posts/:id`). A module's paths lie in its own namespace, so they can
/// repeat neither each other nor a configured prefix (exact patterns never equal prefixes).
///
/// A `GET` route's permission is checked here; a changing route with a permission only requires a
/// token here, and the module host checks the permission: a denied change must reach the host,
/// which audits the attempt (the rule of the configured routes, `config/default.yaml`).
fn module_routes(
    config: &GatewayConfig,
    modules: &ModuleSet,
    problems: &mut Vec<String>,
) -> Vec<(Pattern, RouteConfig)> {
    let host = &config.modules.host;
    if modules.is_empty() {
        return Vec::new();
    }
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problems.push(format!(
            "gateway.modules.host `{host}` must be a registry service name, e.g. platform"
        ));
        return Vec::new();
    }
    let mut routes = Vec::new();
    for module in modules.iter() {
        for spec in module.routes() {
            let mut route = RouteConfig::new(
                format!("{} {}", spec.method(), spec.path().as_str()),
                host.clone(),
            );
            match (spec.method(), spec.permission()) {
                (_, None) => {}
                (keel_module::Method::Get, Some(permission)) => {
                    route.permission = Some(permission.to_owned());
                }
                (_, Some(_)) => route.auth = Some(policy::AuthPolicy::Required),
            }
            routes.push((Pattern::module_route(spec), route));
        }
    }
    routes
}

impl<T> RouteTable<T> {
    /// The routes, most specific first, to be turned into routes of another kind.
    pub(crate) fn into_entries(self) -> Vec<(Pattern, T)> {
        self.routes
    }

    /// A table of `entries` (as [`RouteTable::into_entries`] gave them), ordered most specific
    /// first.
    pub(crate) fn from_entries(mut entries: Vec<(Pattern, T)>) -> Self {
        entries.sort_by(|(a, _), (b, _)| a.specificity(b));
        Self { routes: entries }
    }

    /// Every route's `T`, most specific first.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.routes.iter().map(|(_, value)| value)
    }

    /// The most specific route matching `path` and `method`, and the length of the part of the
    /// path it matched. When none does, the methods of the routes that match the path alone
    /// (empty: no route has this path), sorted, for a 405's `Allow`.
    pub(crate) fn find(&self, path: &str, method: &Method) -> Result<(&T, usize), Vec<Method>> {
        let mut allowed: Vec<Method> = Vec::new();
        for (pattern, value) in &self.routes {
            let Some(len) = pattern.matched_len(path) else {
                continue;
            };
            if pattern.accepts(method) {
                return Ok((value, len));
            }
            allowed.extend(pattern.methods.iter().flatten().cloned());
        }
        allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        allowed.dedup();
        Err(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(prefixes: &[&str]) -> RouteTable<RouteConfig> {
        let routes = prefixes.iter().map(|p| RouteConfig::new(*p, *p)).collect();
        match RouteTable::parse(&GatewayConfig::new(routes)) {
            Ok(table) => table,
            Err(problems) => panic!("{problems:?}"),
        }
    }

    /// The prefix of the route `path` goes to, and the path's unmatched rest.
    fn route<'a>(table: &'a RouteTable<RouteConfig>, path: &'a str) -> Option<(&'a str, &'a str)> {
        table
            .find(path, &Method::GET)
            .ok()
            .map(|(route, len)| (route.prefix.as_str(), &path[len..]))
    }

    #[test]
    fn a_prefix_matches_itself_and_below_but_not_a_longer_segment() {
        let table = table(&["/api/v1/users"]);
        assert_eq!(route(&table, "/api/v1/users"), Some(("/api/v1/users", "")));
        assert_eq!(route(&table, "/api/v1/users/"), Some(("/api/v1/users", "/")));
        assert_eq!(
            route(&table, "/api/v1/users/42/x"),
            Some(("/api/v1/users", "/42/x"))
        );
        assert_eq!(route(&table, "/api/v1/usersx"), None);
        assert_eq!(route(&table, "/api/v1/user"), None);
        assert_eq!(route(&table, "/api/v1"), None);
        assert_eq!(route(&table, "/API/v1/users"), None);
    }

    #[test]
    fn a_star_matches_exactly_one_non_empty_segment() {
        let table = table(&["/api/v1/users/*/roles"]);
        assert_eq!(
            route(&table, "/api/v1/users/42/roles/7"),
            Some(("/api/v1/users/*/roles", "/7"))
        );
        assert_eq!(route(&table, "/api/v1/users//roles"), None);
        assert_eq!(route(&table, "/api/v1/users/42/rolesx"), None);
        assert_eq!(route(&table, "/api/v1/users/42/43/roles"), None);
    }

    #[test]
    fn the_most_specific_route_wins_whatever_the_configured_order() {
        let prefixes = [
            "/",
            "/api/v1/users",
            "/api/v1/users/*/roles",
            "/api/v1/users/me",
            "/a/*/c",
            "/a/b/*",
        ];
        let mut reversed = prefixes;
        reversed.reverse();
        for order in [prefixes, reversed] {
            let table = table(&order);
            assert_eq!(
                route(&table, "/api/v1/users/42/roles").map(|r| r.0),
                Some("/api/v1/users/*/roles")
            );
            assert_eq!(
                route(&table, "/api/v1/users/me").map(|r| r.0),
                Some("/api/v1/users/me")
            );
            assert_eq!(
                route(&table, "/api/v1/users/me/roles").map(|r| r.0),
                Some("/api/v1/users/*/roles")
            );
            assert_eq!(
                route(&table, "/api/v1/users/42").map(|r| r.0),
                Some("/api/v1/users")
            );
            assert_eq!(route(&table, "/a/b/c").map(|r| r.0), Some("/a/b/*"));
            assert_eq!(route(&table, "/a/x/c").map(|r| r.0), Some("/a/*/c"));
            assert_eq!(route(&table, "/elsewhere").map(|r| r.0), Some("/"));
        }
    }

    #[test]
    fn malformed_prefixes_are_refused_with_the_reason() {
        let cases = [
            ("api/v1", "must start with `/`"),
            ("/api/v1/", "must not end with `/`"),
            ("/api//v1", "empty segment"),
            ("/api/us*rs", "`*` must be a whole segment"),
            ("/api/{id}/roles", "write a variable segment as `*`"),
            ("/api/../v1", "dot segment"),
            ("/api/v 1", "not allowed in a URL path"),
            ("/api/v1?x=1", "not allowed in a URL path"),
        ];
        for (prefix, reason) in cases {
            match Pattern::parse(prefix) {
                Ok(pattern) => panic!("{prefix:?} was accepted as {pattern:?}"),
                Err(message) => assert!(message.contains(reason), "{prefix:?}: {message}"),
            }
        }
    }

    #[test]
    fn duplicates_and_bad_services_are_reported_together_naming_their_keys() {
        let config = GatewayConfig::new(vec![
            RouteConfig::new("/api/v1/users/*/roles", "authz"),
            RouteConfig::new("/api/v1/users/*/roles", "identity"),
            RouteConfig::new("/api/v1/roles", ""),
            RouteConfig::new("nope", "audit"),
        ]);
        let problems = RouteTable::parse(&config).err().unwrap_or_default();
        assert_eq!(
            problems,
            [
                "gateway.routes[1].prefix `/api/v1/users/*/roles` repeats the prefix of gateway.routes[0]",
                "gateway.routes[2].service `` must be a registry service name, e.g. identity",
                "gateway.routes[3].prefix `nope` must start with `/`",
            ]
        );
    }

    const BLOG: &str = "
name: blog
version: 0.1.0
permissions: [blog.post.create, blog.post.read, blog.post.update]
routes:
  - {method: POST, path: /api/v1/blog/posts, permission: blog.post.create}
  - {method: GET, path: /api/v1/blog/posts}
  - {method: GET, path: /api/v1/blog/posts/:id, permission: blog.post.read}
  - {method: PUT, path: '/api/v1/blog/posts/{id}', permission: blog.post.update}
  - {method: GET, path: /api/v1/blog/posts/latest}
";

    fn blog() -> keel_module::Manifest {
        keel_module::Manifest::from_yaml(BLOG, "blog").expect("valid manifest")
    }

    fn module_table(routes: Vec<RouteConfig>) -> RouteTable<RouteConfig> {
        match RouteTable::parse(&GatewayConfig::new(routes).with_module(blog())) {
            Ok(table) => table,
            Err(problems) => panic!("{problems:?}"),
        }
    }

    /// The label of the route `method path` goes to, or the methods the path answers.
    fn module_route(table: &RouteTable<RouteConfig>, method: Method, path: &str) -> Result<String, String> {
        match table.find(path, &method) {
            Ok((route, _)) => Ok(format!("{} -> {}", route.prefix, route.service)),
            Err(allowed) => Err(crate::error::allow_header(&allowed)),
        }
    }

    #[test]
    fn module_routes_match_their_exact_path_and_method() {
        let table = module_table(vec![RouteConfig::new("/api/v1/users", "identity")]);
        let cases = [
            (
                Method::POST,
                "/api/v1/blog/posts",
                Ok("POST /api/v1/blog/posts -> platform"),
            ),
            (
                Method::GET,
                "/api/v1/blog/posts",
                Ok("GET /api/v1/blog/posts -> platform"),
            ),
            (
                Method::HEAD,
                "/api/v1/blog/posts",
                Ok("GET /api/v1/blog/posts -> platform"),
            ),
            (
                Method::GET,
                "/api/v1/blog/posts/7",
                Ok("GET /api/v1/blog/posts/:id -> platform"),
            ),
            (
                Method::PUT,
                "/api/v1/blog/posts/7",
                Ok("PUT /api/v1/blog/posts/{id} -> platform"),
            ),
            // A literal beats a parameter.
            (
                Method::GET,
                "/api/v1/blog/posts/latest",
                Ok("GET /api/v1/blog/posts/latest -> platform"),
            ),
            (
                Method::PUT,
                "/api/v1/blog/posts/latest",
                Ok("PUT /api/v1/blog/posts/{id} -> platform"),
            ),
            // Known paths, other methods: the methods the path has.
            (Method::DELETE, "/api/v1/blog/posts/7", Err("GET, HEAD, PUT")),
            (Method::PATCH, "/api/v1/blog/posts", Err("GET, HEAD, POST")),
            // Exact: nothing below a module route, nor with a trailing slash.
            (Method::GET, "/api/v1/blog/posts/7/comments", Err("")),
            (Method::GET, "/api/v1/blog/posts/", Err("")),
            (Method::GET, "/api/v1/blog", Err("")),
            (Method::GET, "/api/v1/users/7", Ok("/api/v1/users -> identity")),
        ];
        for (method, path, expected) in cases {
            let expected = expected.map(str::to_owned).map_err(str::to_owned);
            assert_eq!(
                module_route(&table, method.clone(), path),
                expected,
                "{method} {path}"
            );
        }
        let permission = table
            .find("/api/v1/blog/posts/7", &Method::GET)
            .ok()
            .and_then(|(route, _)| route.permission.clone());
        assert_eq!(permission.as_deref(), Some("blog.post.read"));
    }

    #[test]
    fn a_broader_configured_route_takes_what_module_routes_do_not() {
        let table = module_table(vec![RouteConfig::new("/", "web")]);
        assert_eq!(
            module_route(&table, Method::DELETE, "/api/v1/blog/posts/7"),
            Ok("/ -> web".to_owned())
        );
        assert_eq!(
            module_route(&table, Method::GET, "/api/v1/blog/posts/7/comments"),
            Ok("/ -> web".to_owned())
        );
    }

    #[test]
    fn a_configured_route_inside_a_module_namespace_is_refused() {
        let config = GatewayConfig::new(vec![
            RouteConfig::new("/", "web"),
            RouteConfig::new("/api/v1", "legacy"),
            RouteConfig::new("/api/v1/blog/feed", "feeds"),
            RouteConfig::new("/api/v1/*/export", "exports"),
        ])
        .with_module(blog());
        let problems = RouteTable::parse(&config).err().unwrap_or_default();
        assert_eq!(
            problems,
            [
                "gateway.modules: module `blog` routes under /api/v1/blog, where gateway.routes[2] (`/api/v1/blog/feed`) routes too",
                "gateway.modules: module `blog` routes under /api/v1/blog, where gateway.routes[3] (`/api/v1/*/export`) routes too",
            ]
        );
    }

    #[test]
    fn module_problems_are_reported_with_the_route_problems() {
        let config = GatewayConfig::new(vec![RouteConfig::new("nope", "audit")])
            .with_module(blog())
            .with_module(blog())
            .with_module_host("");
        let problems = RouteTable::parse(&config).err().unwrap_or_default();
        assert_eq!(
            problems,
            [
                "gateway.routes[0].prefix `nope` must start with `/`",
                "gateway.modules: the modules cannot run together: module `blog` is present twice (0.1.0 and 0.1.0)",
            ]
        );
        let config = GatewayConfig::new(Vec::new())
            .with_module(blog())
            .with_module_host("");
        assert_eq!(
            RouteTable::parse(&config).err().unwrap_or_default(),
            ["gateway.modules.host `` must be a registry service name, e.g. platform"]
        );
    }

    #[test]
    fn dot_segments_are_recognised_plain_and_encoded() {
        for path in ["/a/../b", "/a/./b", "/a/%2e%2E/b", "/a/.%2e", "/.."] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in ["/a/b", "/a/.b/c", "/a/..b", "/a/%2e%2e%2e", "/"] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }
}
