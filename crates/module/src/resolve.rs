//! A set of modules checked against each other and put in dependency order.
//!
//! Why a module of its own: each manifest can be right on its own while the set is wrong (two
//! modules of one name, a dependency that is absent or of the wrong version, a cycle, a route
//! requiring a permission its dependency does not declare). Those are reported together, naming
//! the modules, before any module's migration runs or any of its routes is mounted.

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;

use crate::Manifest;
use crate::names::permission_module;

/// The name a manifest uses to depend on the platform itself (`core >= 0.1.0`).
pub const CORE_MODULE: &str = "core";

/// Why a set of modules cannot run together; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the modules cannot run together: {}", problems.join("; "))]
pub struct ResolveError {
    problems: Vec<String>,
}

impl ResolveError {
    /// Each problem, naming the modules concerned.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

/// Modules known to run together, dependencies before their dependants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSet {
    ordered: Vec<Manifest>,
}

impl ModuleSet {
    /// Checks `manifests` as a set against the platform's `core_version` and orders them so that
    /// every module comes after the modules it depends on (ties in name order, so the order never
    /// depends on how they were listed).
    pub fn resolve(manifests: Vec<Manifest>, core_version: &Version) -> Result<Self, ResolveError> {
        let mut problems = Vec::new();
        let mut by_name: BTreeMap<String, Manifest> = BTreeMap::new();
        for manifest in manifests {
            if let Some(first) = by_name.get(manifest.name()) {
                problems.push(format!(
                    "module `{}` is present twice ({} and {})",
                    manifest.name(),
                    first.version(),
                    manifest.version()
                ));
                continue;
            }
            by_name.insert(manifest.name().to_owned(), manifest);
        }
        for manifest in by_name.values() {
            problems.extend(dependency_problems(manifest, &by_name, core_version));
            problems.extend(permission_problems(manifest, &by_name));
        }
        let ordered = match order(&by_name) {
            Ok(ordered) => ordered,
            Err(cycle) => {
                problems.push(format!(
                    "modules depend on each other in a cycle: {}",
                    cycle.join(" → ")
                ));
                Vec::new()
            }
        };
        if !problems.is_empty() {
            return Err(ResolveError { problems });
        }
        let ordered = ordered
            .into_iter()
            .filter_map(|name| by_name.remove(&name))
            .collect();
        Ok(Self { ordered })
    }

    /// The modules, each after those it depends on.
    pub fn iter(&self) -> impl Iterator<Item = &Manifest> {
        self.ordered.iter()
    }

    /// The module named `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Manifest> {
        self.ordered.iter().find(|manifest| manifest.name() == name)
    }

    /// How many modules there are.
    pub fn len(&self) -> usize {
        self.ordered.len()
    }

    /// Whether there is no module.
    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }
}

/// Absent dependencies and versions out of their requirement, for `manifest`.
fn dependency_problems(
    manifest: &Manifest,
    by_name: &BTreeMap<String, Manifest>,
    core_version: &Version,
) -> Vec<String> {
    let mut problems = Vec::new();
    for dependency in manifest.dependencies() {
        let found = match dependency.name() {
            CORE_MODULE => Some(core_version),
            name => by_name.get(name).map(Manifest::version),
        };
        match found {
            None => problems.push(format!(
                "module `{}` depends on `{}`, which is not present",
                manifest.name(),
                dependency.name()
            )),
            Some(version) if !dependency.requirement().matches(version) => problems.push(format!(
                "module `{}` needs `{} {}`, but {} is {version}",
                manifest.name(),
                dependency.name(),
                dependency.requirement(),
                dependency.name()
            )),
            Some(_) => {}
        }
    }
    problems
}

/// Routes of `manifest` requiring a permission of another module that this module does not
/// declare.
fn permission_problems(manifest: &Manifest, by_name: &BTreeMap<String, Manifest>) -> Vec<String> {
    manifest
        .routes()
        .iter()
        .enumerate()
        .filter_map(|(index, route)| {
            let permission = route.permission()?;
            let owner = by_name.get(permission_module(permission))?;
            if owner.name() == manifest.name() || owner.permissions().iter().any(|p| p == permission) {
                return None;
            }
            Some(format!(
                "module `{}` routes[{index}] requires `{permission}`, which module `{}` does not declare",
                manifest.name(),
                owner.name()
            ))
        })
        .collect()
}

/// The names in dependency order (Kahn's algorithm, smallest name first among the ready ones), or
/// one cycle, as the names along it with the first repeated at the end.
fn order(by_name: &BTreeMap<String, Manifest>) -> Result<Vec<String>, Vec<String>> {
    // Only dependencies on present modules count; absent ones were reported already.
    let needs = |manifest: &Manifest| -> BTreeSet<String> {
        manifest
            .dependencies()
            .iter()
            .map(|dependency| dependency.name().to_owned())
            .filter(|name| by_name.contains_key(name))
            .collect()
    };
    let mut waiting: BTreeMap<String, BTreeSet<String>> = by_name
        .iter()
        .map(|(name, manifest)| (name.clone(), needs(manifest)))
        .collect();
    let mut ordered = Vec::with_capacity(waiting.len());
    while let Some(ready) = waiting
        .iter()
        .find(|(_, needs)| needs.is_empty())
        .map(|(name, _)| name.clone())
    {
        waiting.remove(&ready);
        for needs in waiting.values_mut() {
            needs.remove(&ready);
        }
        ordered.push(ready);
    }
    match waiting.keys().next() {
        None => Ok(ordered),
        Some(start) => Err(cycle_from(start, &waiting)),
    }
}

/// A cycle among `waiting` (every one of which still needs another of them), found by walking
/// from `start` along its first unmet dependency until a name repeats.
fn cycle_from(start: &str, waiting: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut path: Vec<String> = vec![start.to_owned()];
    loop {
        let current = path.last().map(String::as_str).unwrap_or(start);
        let Some(next) = waiting.get(current).and_then(|needs| needs.iter().next()) else {
            return path;
        };
        if let Some(position) = path.iter().position(|name| name == next) {
            let mut cycle = path.split_off(position);
            cycle.push(next.clone());
            return cycle;
        }
        path.push(next.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str, version: &str, dependencies: &[&str]) -> Manifest {
        let dependencies = dependencies
            .iter()
            .map(|dependency| format!("'{dependency}'"))
            .collect::<Vec<_>>()
            .join(", ");
        Manifest::from_yaml(
            &format!("name: {name}\nversion: {version}\ndependencies: [{dependencies}]\n"),
            name,
        )
        .expect("valid manifest")
    }

    fn core() -> Version {
        Version::new(0, 1, 0)
    }

    fn names(set: &ModuleSet) -> Vec<&str> {
        set.iter().map(Manifest::name).collect()
    }

    #[test]
    fn dependencies_come_first_and_ties_go_by_name() {
        let set = ModuleSet::resolve(
            vec![
                manifest("news", "0.1.0", &["blog ^0.1", "core >= 0.1.0"]),
                manifest("zine", "1.0.0", &[]),
                manifest("blog", "0.1.3", &["core"]),
                manifest("comments", "0.1.0", &["news", "blog"]),
            ],
            &core(),
        )
        .expect("resolves");
        assert_eq!(names(&set), ["blog", "news", "comments", "zine"]);
        assert_eq!(set.len(), 4);
        assert_eq!(
            set.get("news").map(|m| m.version().to_string()),
            Some("0.1.0".to_owned())
        );
        assert!(ModuleSet::resolve(Vec::new(), &core()).expect("empty").is_empty());
    }

    #[test]
    fn duplicates_absent_and_incompatible_dependencies_are_all_reported() {
        let error = ModuleSet::resolve(
            vec![
                manifest("blog", "0.1.0", &["core >= 2.0.0"]),
                manifest("blog", "0.2.0", &[]),
                manifest("news", "0.1.0", &["blog ^0.2", "gallery"]),
            ],
            &core(),
        )
        .expect_err("unresolvable");
        assert_eq!(
            error.problems(),
            [
                "module `blog` is present twice (0.1.0 and 0.2.0)",
                "module `blog` needs `core >=2.0.0`, but core is 0.1.0",
                "module `news` needs `blog ^0.2`, but blog is 0.1.0",
                "module `news` depends on `gallery`, which is not present",
            ]
        );
    }

    #[test]
    fn a_cycle_is_named_along_its_path() {
        let error = ModuleSet::resolve(
            vec![
                manifest("alpha", "0.1.0", &["beta"]),
                manifest("beta", "0.1.0", &["gamma"]),
                manifest("gamma", "0.1.0", &["beta"]),
                manifest("delta", "0.1.0", &[]),
            ],
            &core(),
        )
        .expect_err("cycle");
        assert_eq!(
            error.problems(),
            ["modules depend on each other in a cycle: beta → gamma → beta"]
        );
    }

    #[test]
    fn a_route_may_not_require_a_permission_its_dependency_lacks() {
        let blog = Manifest::from_yaml(
            "name: blog\nversion: 0.1.0\npermissions: [blog.post.read]\n",
            "blog",
        )
        .expect("valid");
        let news = Manifest::from_yaml(
            "name: news\nversion: 0.1.0\ndependencies: [blog]\nroutes:\n  - {method: GET, path: /api/v1/news, permission: blog.post.read}\n  - {method: POST, path: /api/v1/news, permission: blog.post.publish}\n",
            "news",
        )
        .expect("valid");
        let error = ModuleSet::resolve(vec![blog, news], &core()).expect_err("missing permission");
        assert_eq!(
            error.problems(),
            ["module `news` routes[1] requires `blog.post.publish`, which module `blog` does not declare"]
        );
    }
}
