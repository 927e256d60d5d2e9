//! One module's manifest: read from YAML, checked, and kept only in its checked form.
//!
//! Why a module of its own: the YAML is read into a loose shape first (strings everywhere) so that
//! every problem of a manifest is found and reported at once, each naming its key
//! (`routes[2].permission`), instead of stopping at the first; only a manifest with no problem
//! becomes a [`Manifest`], whose fields the rest of the platform can trust.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::Deserialize;

use crate::names::{is_identifier, module_name_problem, permission_module, permission_problem};
use crate::resolve::CORE_MODULE;

/// The file name of a module's manifest inside its directory.
const MANIFEST_FILE: &str = "module.yaml";
/// Longest description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 500;
/// Module names no module may take: the platform's own, and the namespaces of its public routes
/// (`/api/v1/users`, `/api/v1/auth`, …), which a module of that name would otherwise route under.
const RESERVED_NAMES: [&str; 9] = [
    CORE_MODULE,
    "platform",
    "identity",
    "auth",
    "authz",
    "audit",
    "users",
    "roles",
    "permissions",
];
/// Characters a literal path segment may hold besides ASCII letters and digits (RFC 3986 `pchar`,
/// `%` for percent-encoded octets).
const SEGMENT_CHARS: &str = "-._~!$&'()+,;=:@%";

/// Why a manifest could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file or directory could not be read.
    #[error("cannot read module manifest {}: {source}", path.display())]
    Read {
        /// The path that could not be read.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML of the manifest's shape (a missing or unknown key, a wrong type).
    #[error("module manifest {origin} does not have the manifest's shape: {message}")]
    Syntax {
        /// Where the manifest came from (its path, or the name given with the text).
        origin: String,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// The manifest has the right shape but breaks its rules; every problem is listed.
    #[error("module manifest {origin} is invalid: {}", problems.join("; "))]
    Invalid {
        /// Where the manifest came from.
        origin: String,
        /// Each problem, naming its key (`routes[1].path ...`).
        problems: Vec<String>,
    },
}

/// A module's manifest, checked: every field below keeps the rules written on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    name: String,
    version: Version,
    description: Option<String>,
    dependencies: Vec<Dependency>,
    permissions: Vec<String>,
    routes: Vec<RouteSpec>,
}

/// A module another one needs, with the versions it works with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    name: String,
    requirement: VersionReq,
}

/// An HTTP method a module route answers. `HEAD` is implied by `GET`; `OPTIONS` (CORS preflight)
/// is answered by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET` (and `HEAD`).
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

/// One route a module serves, with the permission a caller needs for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    method: Method,
    path: RoutePath,
    permission: Option<String>,
}

/// A route's path: literal segments and named parameters (`/api/v1/blog/posts/:id`; `{id}` is
/// read the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePath {
    text: String,
    segments: Vec<PathSegment>,
}

/// One segment of a [`RoutePath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// Matches exactly this text.
    Literal(String),
    /// Matches any one non-empty segment, handed to the handler under this name.
    Param(String),
}

/// The manifest as written, before any rule is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

/// A route as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    method: String,
    path: String,
    #[serde(default)]
    permission: Option<String>,
}

impl Manifest {
    /// Reads and checks the manifest in `text`; `origin` names it in errors (a path, or the
    /// module's name for a manifest compiled into its crate with `include_str!`).
    ///
    /// The rules:
    /// - `name`: a lowercase identifier (letters, digits, `_`), at most 64 characters, not one the
    ///   platform reserves (`core`, `platform`, and its route namespaces `identity`, `auth`,
    ///   `authz`, `audit`, `users`, `roles`, `permissions`);
    /// - `version`: semantic versioning (`0.1.0`);
    /// - `dependencies`: `name requirement` each (`core >= 0.1.0`, `auth_extras ^1.2`; a bare name
    ///   takes any version), each module once, never itself; `core` is the platform;
    /// - `permissions`: `module.resource.action` names, each once, all under the module's own name;
    /// - `routes`: a method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`) and a path under
    ///   `/api/v<N>/<name>` (a module serves only its own namespace, so it can never shadow a core
    ///   route or another module's), parameters written `:id` or `{id}`, no two routes with the
    ///   same method and path shape; the optional `permission` is one the module declares, a
    ///   `platform.*` permission, or one of a module it depends on.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ManifestError> {
        let raw: RawManifest = serde_norway::from_str(text).map_err(|error| ManifestError::Syntax {
            origin: origin.to_owned(),
            message: error.to_string(),
        })?;
        raw.check().map_err(|problems| ManifestError::Invalid {
            origin: origin.to_owned(),
            problems,
        })
    }

    /// Reads and checks the manifest file at `path`.
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Reads every manifest `paths` name, in order: a file is a manifest; a directory holding a
    /// `module.yaml` is one module's directory; any other directory holds modules, each
    /// `<dir>/*/module.yaml` read in name order. A path that does not exist is an error (a typo in
    /// the configuration must not silently drop a module).
    pub fn discover(paths: &[PathBuf]) -> Result<Vec<Self>, ManifestError> {
        let mut manifests = Vec::new();
        for path in paths {
            let read_error = |source| ManifestError::Read {
                path: path.clone(),
                source,
            };
            let metadata = std::fs::metadata(path).map_err(read_error)?;
            if !metadata.is_dir() {
                manifests.push(Self::read(path)?);
                continue;
            }
            let own = path.join(MANIFEST_FILE);
            if own.is_file() {
                manifests.push(Self::read(&own)?);
                continue;
            }
            let mut found = Vec::new();
            for entry in std::fs::read_dir(path).map_err(read_error)? {
                let candidate = entry.map_err(read_error)?.path().join(MANIFEST_FILE);
                if candidate.is_file() {
                    found.push(candidate);
                }
            }
            found.sort();
            for file in found {
                manifests.push(Self::read(&file)?);
            }
        }
        Ok(manifests)
    }

    /// The module's name, e.g. `blog`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The module's version.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// What the module is for, if the manifest says.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The modules this one needs (`core` is the platform itself).
    pub fn dependencies(&self) -> &[Dependency] {
        &self.dependencies
    }

    /// The permissions the module adds to the catalogue, each `<name>.resource.action`.
    pub fn permissions(&self) -> &[String] {
        &self.permissions
    }

    /// The routes the module serves, in the manifest's order.
    pub fn routes(&self) -> &[RouteSpec] {
        &self.routes
    }
}

impl Dependency {
    /// The name of the module depended on (`core`: the platform).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The versions of it this module works with.
    pub fn requirement(&self) -> &VersionReq {
        &self.requirement
    }
}

impl Method {
    /// The method's name as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Get, Self::Post, Self::Put, Self::Patch, Self::Delete]
            .into_iter()
            .find(|method| method.as_str() == text)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RouteSpec {
    /// The method it answers.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Its path.
    pub fn path(&self) -> &RoutePath {
        &self.path
    }

    /// The permission a caller needs, if any (without one the module decides who may call it).
    pub fn permission(&self) -> Option<&str> {
        self.permission.as_deref()
    }
}

impl RoutePath {
    /// The path as the manifest wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its segments, in order.
    pub fn segments(&self) -> &[PathSegment] {
        &self.segments
    }

    /// The path with every parameter written `*`: two routes with the same shape match the same
    /// requests.
    fn shape(&self) -> String {
        self.segments
            .iter()
            .map(|segment| match segment {
                PathSegment::Literal(text) => format!("/{text}"),
                PathSegment::Param(_) => "/*".to_owned(),
            })
            .collect()
    }

    /// Parses `text` for the module `module`, or says what is wrong with it.
    fn parse(text: &str, module: &str) -> Result<Self, String> {
        let Some(body) = text.strip_prefix('/') else {
            return Err(format!("`{text}` must start with `/`"));
        };
        let mut segments = Vec::new();
        let mut params = HashSet::new();
        for segment in body.split('/') {
            let parsed = parse_segment(segment).map_err(|reason| format!("`{text}`: {reason}"))?;
            if let PathSegment::Param(name) = &parsed
                && !params.insert(name.clone())
            {
                return Err(format!("`{text}` names the parameter `{name}` twice"));
            }
            segments.push(parsed);
        }
        let in_namespace = matches!(
            segments.as_slice(),
            [PathSegment::Literal(api), PathSegment::Literal(version), PathSegment::Literal(name), ..]
                if api == "api" && is_api_version(version) && name == module
        );
        if !in_namespace {
            return Err(format!(
                "`{text}` must lie under `/api/v<N>/{module}`: a module serves only its own namespace"
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }
}

/// Whether `segment` is `v` followed by a version number (`v1`, `v2`).
fn is_api_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|number| !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()))
}

fn parse_segment(segment: &str) -> Result<PathSegment, String> {
    let param = segment
        .strip_prefix(':')
        .or_else(|| segment.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')));
    if let Some(name) = param {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        return match valid {
            true => Ok(PathSegment::Param(name.to_owned())),
            false => Err(format!(
                "parameter `{segment}` needs a name of letters, digits and _"
            )),
        };
    }
    match segment {
        "" => Err("has an empty segment (`//` or a trailing `/`)".to_owned()),
        "." | ".." => Err(format!("has a dot segment `{segment}`")),
        _ if segment.contains(['{', '}', '*']) => Err(format!(
            "segment `{segment}`: a parameter is a whole segment, `:name` or `{{name}}`"
        )),
        _ if !segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SEGMENT_CHARS.contains(c)) =>
        {
            Err(format!(
                "segment `{segment}` has a character not allowed in a URL path"
            ))
        }
        _ => Ok(PathSegment::Literal(segment.to_owned())),
    }
}

impl RawManifest {
    /// The checked manifest, or every problem found.
    fn check(self) -> Result<Manifest, Vec<String>> {
        let mut problems = Vec::new();
        let name_problem = module_name_problem(&self.name);
        if let Some(problem) = &name_problem {
            problems.push(format!("name {problem}"));
        } else if RESERVED_NAMES.contains(&self.name.as_str()) {
            problems.push(format!("name `{}` is reserved for the platform", self.name));
        }
        let version = Version::parse(&self.version)
            .map_err(|error| {
                problems.push(format!(
                    "version `{}` is not semantic versioning: {error}",
                    self.version
                ))
            })
            .ok();
        if let Some(description) = &self.description
            && description.chars().count() > MAX_DESCRIPTION_CHARS
        {
            problems.push(format!(
                "description is longer than {MAX_DESCRIPTION_CHARS} characters"
            ));
        }
        let dependencies = self.check_dependencies(&mut problems);
        let permissions = self.check_permissions(&mut problems);
        let routes = match name_problem {
            // Paths are checked against the name; a bad name was reported already.
            Some(_) => Vec::new(),
            None => self.check_routes(&dependencies, &mut problems),
        };
        match version {
            Some(version) if problems.is_empty() => Ok(Manifest {
                name: self.name,
                version,
                description: self.description,
                dependencies,
                permissions,
                routes,
            }),
            _ => Err(problems),
        }
    }

    fn check_dependencies(&self, problems: &mut Vec<String>) -> Vec<Dependency> {
        let mut dependencies: Vec<Dependency> = Vec::new();
        for (index, written) in self.dependencies.iter().enumerate() {
            let key = format!("dependencies[{index}]");
            let trimmed = written.trim();
            let split = trimmed
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(trimmed.len());
            let (name, requirement) = trimmed.split_at(split);
            if !is_identifier(name) {
                problems.push(format!(
                    "{key} `{written}` must be a module name, then optionally a version requirement \
                     (e.g. `core >= 0.1.0`)"
                ));
                continue;
            }
            let requirement = match requirement.trim() {
                "" => Ok(VersionReq::STAR),
                text => VersionReq::parse(text),
            };
            let requirement = match requirement {
                Ok(requirement) => requirement,
                Err(error) => {
                    problems.push(format!(
                        "{key} `{written}` has an invalid version requirement: {error}"
                    ));
                    continue;
                }
            };
            if name == self.name {
                problems.push(format!("{key} `{written}`: a module cannot depend on itself"));
            } else if dependencies.iter().any(|known| known.name == name) {
                problems.push(format!("{key} `{written}` repeats the module `{name}`"));
            } else {
                dependencies.push(Dependency {
                    name: name.to_owned(),
                    requirement,
                });
            }
        }
        dependencies
    }

    fn check_permissions(&self, problems: &mut Vec<String>) -> Vec<String> {
        let mut seen = HashSet::new();
        for (index, permission) in self.permissions.iter().enumerate() {
            let key = format!("permissions[{index}]");
            if let Some(problem) = permission_problem(permission) {
                problems.push(format!("{key} {problem}"));
            } else if permission_module(permission) != self.name {
                problems.push(format!(
                    "{key} `{permission}` must start with the module's name, `{}.`",
                    self.name
                ));
            } else if !seen.insert(permission.as_str()) {
                problems.push(format!("{key} `{permission}` is declared twice"));
            }
        }
        self.permissions.clone()
    }

    fn check_routes(&self, dependencies: &[Dependency], problems: &mut Vec<String>) -> Vec<RouteSpec> {
        let mut routes = Vec::new();
        let mut seen: Vec<(Method, String, usize)> = Vec::new();
        for (index, raw) in self.routes.iter().enumerate() {
            let key = format!("routes[{index}]");
            let method = Method::parse(&raw.method);
            if method.is_none() {
                problems.push(format!(
                    "{key}.method `{}` must be one of GET, POST, PUT, PATCH, DELETE",
                    raw.method
                ));
            }
            let path = RoutePath::parse(&raw.path, &self.name)
                .map_err(|problem| problems.push(format!("{key}.path {problem}")))
                .ok();
            if let Some(permission) = &raw.permission {
                if let Some(problem) = permission_problem(permission) {
                    problems.push(format!("{key}.permission {problem}"));
                } else if !self.may_require(permission, dependencies) {
                    problems.push(format!(
                        "{key}.permission `{permission}` is neither declared in permissions, a \
                         platform permission, nor one of a module this one depends on"
                    ));
                }
            }
            let (Some(method), Some(path)) = (method, path) else {
                continue;
            };
            let shape = path.shape();
            if let Some((_, _, first)) = seen.iter().find(|(m, s, _)| *m == method && *s == shape) {
                problems.push(format!(
                    "{key} {method} {} repeats routes[{first}] (the same method and path shape)",
                    raw.path
                ));
            }
            seen.push((method, shape, index));
            routes.push(RouteSpec {
                method,
                path,
                permission: raw.permission.clone(),
            });
        }
        routes
    }

    /// Whether a route of this module may require `permission`: its own declared ones, the
    /// platform's, or a dependency's (checked against that module when the set is resolved).
    fn may_require(&self, permission: &str, dependencies: &[Dependency]) -> bool {
        let module = permission_module(permission);
        self.permissions.iter().any(|declared| declared == permission)
            || module == "platform"
            || (module != self.name && dependencies.iter().any(|dependency| dependency.name == module))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOG: &str = "
name: blog
version: 0.1.0
description: Posts, the reference module.
dependencies:
  - core >= 0.1.0
permissions:
  - blog.post.create
  - blog.post.read
routes:
  - method: POST
    path: /api/v1/blog/posts
    permission: blog.post.create
  - method: GET
    path: /api/v1/blog/posts/:id
    permission: blog.post.read
  - method: GET
    path: /api/v1/blog/posts
";

    fn problems(text: &str) -> Vec<String> {
        match Manifest::from_yaml(text, "test") {
            Err(ManifestError::Invalid { problems, .. }) => problems,
            other => panic!("expected an invalid manifest, got {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_manifest_reads_with_every_field() {
        let manifest = Manifest::from_yaml(BLOG, "test").expect("valid");
        assert_eq!(manifest.name(), "blog");
        assert_eq!(manifest.version(), &Version::new(0, 1, 0));
        assert_eq!(manifest.description(), Some("Posts, the reference module."));
        assert_eq!(manifest.dependencies().len(), 1);
        assert_eq!(manifest.dependencies()[0].name(), "core");
        assert!(
            manifest.dependencies()[0]
                .requirement()
                .matches(&Version::new(0, 1, 0))
        );
        assert!(
            !manifest.dependencies()[0]
                .requirement()
                .matches(&Version::new(0, 0, 9))
        );
        assert_eq!(manifest.permissions(), ["blog.post.create", "blog.post.read"]);
        let routes = manifest.routes();
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[1].method(), Method::Get);
        assert_eq!(routes[1].path().as_str(), "/api/v1/blog/posts/:id");
        assert_eq!(
            routes[1].path().segments().last(),
            Some(&PathSegment::Param("id".to_owned()))
        );
        assert_eq!(routes[1].permission(), Some("blog.post.read"));
        assert_eq!(routes[2].permission(), None);
    }

    #[test]
    fn braces_name_a_parameter_too_and_a_bare_dependency_takes_any_version() {
        let manifest = Manifest::from_yaml(
            "name: news\nversion: 1.2.3-beta.1\ndependencies: [blog]\nroutes:\n  - {method: PUT, path: '/api/v2/news/items/{item_id}'}\n",
            "test",
        )
        .expect("valid");
        assert_eq!(manifest.dependencies()[0].requirement(), &VersionReq::STAR);
        assert_eq!(
            manifest.routes()[0].path().segments()[4],
            PathSegment::Param("item_id".to_owned())
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_its_key() {
        let found = problems(
            "
name: blog
version: one
description: ok
dependencies: ['core >= x', 'blog', '-bad', 'news', 'news ^1']
permissions: [blog.post.create, blog.post.create, news.item.read, blog.post]
routes:
  - {method: FETCH, path: /api/v1/blog/posts}
  - {method: GET, path: /api/v1/users}
  - {method: GET, path: '/api/v1/blog/posts/:id/:id'}
  - {method: GET, path: /api/v1/blog/posts/, permission: blog.post.create}
  - {method: POST, path: /api/v1/blog/x, permission: other.thing.do}
  - {method: POST, path: '/api/v1/blog/posts/{id}'}
  - {method: POST, path: '/api/v1/blog/posts/:slug'}
  - {method: GET, path: '/api/v1/blog/a*b'}
",
        );
        let expect = [
            "version `one` is not semantic versioning",
            "dependencies[0] `core >= x` has an invalid version requirement",
            "dependencies[1] `blog`: a module cannot depend on itself",
            "dependencies[2] `-bad` must be a module name",
            "permissions[1] `blog.post.create` is declared twice",
            "permissions[2] `news.item.read` must start with the module's name, `blog.`",
            "permissions[3] `blog.post` must have the form module.resource.action",
            "routes[0].method `FETCH` must be one of GET, POST, PUT, PATCH, DELETE",
            "routes[1].path `/api/v1/users` must lie under `/api/v<N>/blog`",
            "routes[2].path `/api/v1/blog/posts/:id/:id` names the parameter `id` twice",
            "routes[3].path `/api/v1/blog/posts/`: has an empty segment",
            "routes[4].permission `other.thing.do` is neither declared",
            "routes[6] POST /api/v1/blog/posts/:slug repeats routes[5]",
            "routes[7].path `/api/v1/blog/a*b`: segment `a*b`: a parameter is a whole segment",
        ];
        for expected in expect {
            assert!(
                found.iter().any(|problem| problem.starts_with(expected)),
                "missing `{expected}` in {found:#?}"
            );
        }
        assert!(
            found
                .iter()
                .any(|problem| problem == "dependencies[4] `news ^1` repeats the module `news`"),
            "{found:#?}"
        );
    }

    #[test]
    fn reserved_and_malformed_names_are_refused() {
        assert_eq!(
            problems("name: platform\nversion: 0.1.0\n"),
            ["name `platform` is reserved for the platform"]
        );
        assert_eq!(
            problems("name: core\nversion: 0.1.0\n"),
            ["name `core` is reserved for the platform"]
        );
        // A module named after a core namespace would route under it (`/api/v1/auth/login`).
        for taken in [
            "auth",
            "users",
            "roles",
            "permissions",
            "identity",
            "authz",
            "audit",
        ] {
            assert_eq!(
                problems(&format!("name: {taken}\nversion: 0.1.0\n")),
                [format!("name `{taken}` is reserved for the platform")]
            );
        }
        let found = problems("name: Blog-Posts\nversion: 0.1.0\nroutes: [{method: GET, path: /api/v1/x}]\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("name `Blog-Posts` must be"), "{found:?}");
    }

    #[test]
    fn a_route_may_require_a_dependency_s_or_a_platform_permission() {
        let manifest = Manifest::from_yaml(
            "name: news\nversion: 0.1.0\ndependencies: ['blog ^0.1']\nroutes:\n  - {method: GET, path: /api/v1/news, permission: blog.post.read}\n  - {method: DELETE, path: /api/v1/news, permission: platform.user.delete}\n",
            "test",
        )
        .expect("valid");
        assert_eq!(manifest.routes()[0].permission(), Some("blog.post.read"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_syntax_errors_with_the_place() {
        let error = Manifest::from_yaml("name: blog\nversion: 0.1.0\nroute: []\n", "m.yaml")
            .expect_err("unknown key");
        assert!(
            matches!(&error, ManifestError::Syntax { origin, message } if origin == "m.yaml" && message.contains("unknown field `route`")),
            "{error}"
        );
        let error = Manifest::from_yaml("name: blog\nversion: 0.1.0\nroutes: {}\n", "m.yaml")
            .expect_err("wrong type");
        assert!(matches!(error, ManifestError::Syntax { .. }), "{error}");
    }

    #[test]
    fn discovery_reads_files_module_directories_and_directories_of_modules() {
        let root = tempfile::tempdir().expect("temp dir");
        let modules = root.path().join("modules");
        for name in ["zeta", "alpha"] {
            std::fs::create_dir_all(modules.join(name)).expect("dir");
            std::fs::write(
                modules.join(name).join(MANIFEST_FILE),
                format!("name: {name}\nversion: 0.1.0\n"),
            )
            .expect("write");
        }
        // A directory without a manifest is not a module.
        std::fs::create_dir_all(modules.join("notes")).expect("dir");
        let single = root.path().join("extra.yaml");
        std::fs::write(&single, "name: extra\nversion: 0.1.0\n").expect("write");

        let found = Manifest::discover(&[modules.clone(), modules.join("zeta"), single]).expect("discovered");
        let names: Vec<&str> = found.iter().map(Manifest::name).collect();
        assert_eq!(names, ["alpha", "zeta", "zeta", "extra"]);

        let missing = Manifest::discover(&[root.path().join("nowhere")]).expect_err("missing path");
        assert!(matches!(missing, ManifestError::Read { .. }), "{missing}");
        assert!(missing.to_string().contains("nowhere"), "{missing}");
    }
}
