//! From the manifest to the graph of what gets built for one arch: version
//! selection (`preferred_version`), providers (`provides`, `virtual/`,
//! `preferred_provider`), native variants, per-arch overrides, build-time
//! and run-time closures, cycles, and the run-time package set with
//! `rprovides` / `rconflicts` / `rreplaces`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;

use crate::model::manifest::{Build, Class, Loaded, Name, Problem, Problems, Recipe, Source};
use crate::model::version::{self, Version};

/// Which machine a node is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Variant {
    /// The board.
    Target,
    /// The build machine (`<name>-native`); shared by every arch.
    Native,
}

/// A recipe after version and provider selection and overrides: everything
/// a task needs, and where each value came from.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// `python3` or `python3-native`.
    pub name: String,
    /// The `[[recipe]]` name.
    pub recipe: String,
    pub variant: Variant,
    pub version: String,
    pub class: Class,
    pub license: String,
    pub summary: String,
    pub sources: Vec<Source>,
    /// How it is built, after overrides and build options.
    #[serde(flatten)]
    pub build: Build,
    /// The build options (packageconfig) switched on by distro features.
    pub features: Vec<String>,
    /// What those options need of the toolchain (not a signature input:
    /// the toolchain's identity is).
    #[serde(skip)]
    pub toolchain_needs: std::collections::BTreeSet<crate::model::manifest::ToolchainNeed>,
    /// Direct build-time dependencies (indices into `Graph::nodes`).
    pub depends: Vec<usize>,
    /// Direct run-time dependencies.
    pub rdepends: Vec<usize>,
    /// For `show`: field -> where its value came from.
    pub origin: BTreeMap<String, String>,
}

impl Node {
    pub fn pv(&self) -> Version {
        Version::parse(&self.version).expect("validated when the manifest was read")
    }

    pub fn is_native(&self) -> bool {
        self.variant == Variant::Native
    }

    /// The image's Python interpreter: the recipe of the cpython class.
    pub fn is_interpreter(&self) -> bool {
        self.class == Class::Cpython
    }

    /// Whether a build step runs target programs (`${TARGET_RUN_ENV}`).
    pub fn runs_target_programs(&self) -> bool {
        self.build.mentions("${TARGET_RUN_ENV}")
    }
}

/// The resolved build graph for one arch.
#[derive(Debug, Serialize)]
pub struct Graph {
    pub arch: String,
    /// Topologically sorted: every node comes after its `depends`.
    pub nodes: Vec<Node>,
    /// The image's run-time package set (indices), after rreplaces.
    pub runtime: Vec<usize>,
    /// Soft problems (a missing `rrecommends` provider).
    pub warnings: Vec<String>,
}

impl Graph {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The build-time closure of `node`, without the node itself, in
    /// topological order.
    pub fn depends_closure(&self, node: usize) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = self.nodes[node].depends.clone();
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(&self.nodes[n].depends);
            }
        }
        seen.into_iter().collect() // indices are topological already
    }

    /// A chain of `depends` from a root of the image to `target`, for `graph --why`.
    pub fn why(&self, target: usize, runtime: bool) -> Option<Vec<usize>> {
        let edges = |n: usize| if runtime { &self.nodes[n].rdepends } else { &self.nodes[n].depends };
        let roots: Vec<usize> = if runtime {
            self.runtime.iter().copied().filter(|&r| !self.runtime.iter().any(|&o| self.nodes[o].rdepends.contains(&r))).collect()
        } else {
            (0..self.nodes.len()).filter(|&r| !self.nodes.iter().any(|o| o.depends.contains(&r))).collect()
        };
        // Breadth-first so that the shortest chain is reported.
        let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue: std::collections::VecDeque<usize> = roots.iter().copied().collect();
        let mut seen: BTreeSet<usize> = roots.iter().copied().collect();
        while let Some(n) = queue.pop_front() {
            if n == target {
                let mut path = vec![n];
                let mut cur = n;
                while let Some(&p) = prev.get(&cur) {
                    path.push(p);
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            for &d in edges(n) {
                if seen.insert(d) {
                    prev.insert(d, n);
                    queue.push_back(d);
                }
            }
        }
        None
    }
}

/// Resolve the manifest for `arch`. Every problem found is returned, not
/// only the first.
pub fn resolve(loaded: &Loaded, arch: &str) -> Result<Graph> {
    let mut r = Resolver::new(loaded, arch);
    let graph = r.run();
    if !r.problems.is_empty() {
        return Err(Problems(r.problems).into());
    }
    Ok(graph.expect("no problems means a graph"))
}

struct Resolver<'a> {
    loaded: &'a Loaded,
    /// Names whose version selection failed (already reported).
    unselectable: BTreeSet<String>,
    arch: &'a str,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

/// A candidate node before its dependencies are resolved.
struct Candidate<'a> {
    name: String,
    variant: Variant,
    recipe: &'a Recipe,
    /// Provided names, including the node's own name.
    provides: Vec<String>,
    rprovides: Vec<String>,
}

/// Who provides each name: `providers` for build-time dependencies
/// (`provides`, the node's own name included), `rproviders` for run-time
/// ones (`provides` and `rprovides`); candidate indices.
struct Providers {
    providers: BTreeMap<String, Vec<usize>>,
    rproviders: BTreeMap<String, Vec<usize>>,
}

impl Providers {
    fn of(candidates: &[Candidate]) -> Providers {
        let mut t = Providers { providers: BTreeMap::new(), rproviders: BTreeMap::new() };
        for (i, c) in candidates.iter().enumerate() {
            for p in &c.provides {
                t.providers.entry(p.clone()).or_default().push(i);
            }
            for p in c.provides.iter().chain(&c.rprovides) {
                t.rproviders.entry(p.clone()).or_default().push(i);
            }
        }
        t
    }
}

/// `start` and everything reachable from it along `edges`.
fn closure(start: Vec<usize>, edges: &[Vec<usize>]) -> BTreeSet<usize> {
    let mut reached = BTreeSet::new();
    let mut stack = start;
    while let Some(n) = stack.pop() {
        if reached.insert(n) {
            stack.extend(&edges[n]);
        }
    }
    reached
}

impl<'a> Resolver<'a> {
    fn new(loaded: &'a Loaded, arch: &'a str) -> Self {
        Resolver { loaded, unselectable: BTreeSet::new(), arch, problems: Vec::new(), warnings: Vec::new() }
    }

    fn problem<T>(&mut self, at: &toml::Spanned<T>, key: &str, msg: impl Into<String>) {
        let p = self.loaded.problem(at, key, msg);
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }

    fn run(&mut self) -> Option<Graph> {
        let candidates = self.select_versions();
        let tables = Providers::of(&candidates);
        // Every dependency name of every candidate is resolved, so that
        // `check` reports problems in recipes the image does not use, too.
        let (depends, rdepends) = self.dependencies(&candidates, &tables);
        let roots = self.roots(&candidates, &tables);
        if !self.problems.is_empty() {
            return None;
        }
        // Run-time set: rdepends closure of the roots, then rreplaces and rconflicts.
        let mut runtime = closure(roots, &rdepends);
        self.apply_rreplaces_rconflicts(&candidates, &tables.rproviders, &mut runtime);
        // Build set: everything the run-time set needs to be built.
        let build = closure(runtime.iter().copied().collect(), &depends);
        let order = self.topo_order(&candidates, &depends, &build)?;
        if !self.problems.is_empty() {
            return None;
        }
        let position: BTreeMap<usize, usize> = order.iter().enumerate().map(|(pos, &c)| (c, pos)).collect();
        let nodes = order
            .iter()
            .map(|&c| {
                let mut node = self.node(&candidates[c]);
                for (dep, args) in &candidates[c].recipe.configure_with {
                    if depends[c].iter().any(|&d| candidates[d].recipe.name.get_ref() == dep) {
                        node.build.configure.extend(args.iter().cloned());
                        let prev = node.origin["configure"].clone();
                        node.origin.insert("configure".into(), format!("{prev} + configure_with.{dep} (a dependency)"));
                    }
                }
                node.depends = depends[c].iter().map(|d| position[d]).collect();
                node.rdepends = rdepends[c].iter().filter_map(|d| position.get(d).copied()).collect();
                node
            })
            .collect();
        let mut runtime: Vec<usize> = runtime.iter().map(|r| position[r]).collect();
        runtime.sort();
        Some(Graph { arch: self.arch.to_string(), nodes, runtime, warnings: std::mem::take(&mut self.warnings) })
    }

    /// Each candidate's build-time (`depends`) and run-time (`rdepends`,
    /// and the `rrecommends` that have a provider) dependencies, as
    /// candidate indices.
    fn dependencies(&mut self, candidates: &[Candidate], tables: &Providers) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
        let mut depends = vec![Vec::new(); candidates.len()];
        let mut rdepends = vec![Vec::new(); candidates.len()];
        for (i, c) in candidates.iter().enumerate() {
            let ov = overrides(c.recipe, c.variant, self.arch);
            let dep_names = ov.and_then(|o| o.depends.clone()).unwrap_or_else(|| c.recipe.depends.clone());
            for d in &dep_names {
                let wanted = variant_name(d.get_ref(), c.variant);
                if let Some(p) = self.provider(&tables.providers, candidates, d, &wanted, &format!("recipe {}.depends", c.name)) {
                    depends[i].push(p);
                }
            }
            let rdep_names = ov.and_then(|o| o.rdepends.clone()).unwrap_or_else(|| c.recipe.rdepends.clone());
            for d in &rdep_names {
                let wanted = variant_name(d.get_ref(), c.variant);
                if let Some(p) = self.provider(&tables.rproviders, candidates, d, &wanted, &format!("recipe {}.rdepends", c.name)) {
                    rdepends[i].push(p);
                }
            }
            for d in &c.recipe.rrecommends {
                let wanted = variant_name(d.get_ref(), c.variant);
                if !tables.rproviders.contains_key(&wanted) {
                    self.warnings.push(format!("recipe {}: rrecommends `{wanted}` has no provider; going on without it", c.name));
                } else if let Some(p) = self.provider(&tables.rproviders, candidates, d, &wanted, &format!("recipe {}.rrecommends", c.name)) {
                    rdepends[i].push(p);
                }
            }
        }
        (depends, rdepends)
    }

    /// The image's run-time packages, and what the image's Python packages
    /// link (python3-lxml's RDEPENDS).
    fn roots(&mut self, candidates: &[Candidate], tables: &Providers) -> Vec<usize> {
        let mut roots = Vec::new();
        for root in &self.loaded.manifest.distro.image {
            if let Some(p) = self.provider(&tables.rproviders, candidates, root, root.get_ref(), "distro.image") {
                roots.push(p);
            }
        }
        let requirements = self.loaded.python_requirements().unwrap_or_default();
        for (project, package) in self.loaded.python_package_entries(&requirements) {
            for d in &package.depends {
                if let Some(p) = self.provider(&tables.rproviders, candidates, d, d.get_ref(), &format!("python_package.{project}.depends")) {
                    roots.push(p);
                }
            }
        }
        roots
    }

    /// One candidate per name: the preferred version, or the highest.
    fn select_versions(&mut self) -> Vec<Candidate<'a>> {
        let m = &self.loaded.manifest;
        let mut by_name: BTreeMap<String, Vec<(&'a Recipe, Variant)>> = BTreeMap::new();
        for r in &m.recipes {
            by_name.entry(r.name.get_ref().clone()).or_default().push((r, Variant::Target));
            if r.native {
                by_name.entry(format!("{}-native", r.name.get_ref())).or_default().push((r, Variant::Native));
            }
        }
        for (name, pattern) in &m.distro.preferred_version {
            if !by_name.contains_key(name) {
                let hint = did_you_mean(name, by_name.keys());
                self.problem(pattern, &format!("distro.preferred_version.{name}"), format!("no recipe is called `{name}`{hint}"));
            }
        }
        let mut out = Vec::new();
        for (name, versions) in by_name {
            let base = versions[0].0.name.get_ref().clone();
            // A native variant follows the version preference of its recipe
            // unless it has one of its own.
            let pattern = m.distro.preferred_version.get(&name).or_else(|| m.distro.preferred_version.get(&base));
            let chosen = versions
                .iter()
                .filter(|(r, _)| pattern.is_none_or(|p| version::matches(p.get_ref(), r.version.get_ref())))
                .max_by_key(|(r, _)| Version::parse(r.version.get_ref()).ok());
            let Some(&(recipe, variant)) = chosen else {
                let p = pattern.expect("without a pattern every version matches");
                self.unselectable.insert(name.clone());
                let there: Vec<&str> = versions.iter().map(|(r, _)| r.version.get_ref().as_str()).collect();
                self.problem(
                    p,
                    &format!("distro.preferred_version.{base}"),
                    format!("`{}` matches no version of {name}; there are: {}", p.get_ref(), there.join(", ")),
                );
                continue;
            };
            let provides = std::iter::once(name.clone()).chain(recipe.provides.iter().map(|p| variant_name(p.get_ref(), variant))).collect();
            let rprovides = recipe.rprovides.iter().map(|p| variant_name(p.get_ref(), variant)).collect();
            out.push(Candidate { name, variant, recipe, provides, rprovides });
        }
        out
    }

    /// Which candidate provides `wanted`; `preferred_provider` decides between several.
    fn provider(&mut self, table: &BTreeMap<String, Vec<usize>>, candidates: &[Candidate], at: &Name, wanted: &str, key: &str) -> Option<usize> {
        let pp = &self.loaded.manifest.distro.preferred_provider;
        match table.get(wanted).map(Vec::as_slice) {
            None | Some([]) if self.unselectable.contains(wanted) => None,
            None | Some([]) => {
                let hint = did_you_mean(wanted, table.keys());
                self.problem(at, key, format!("nothing provides `{wanted}`{hint}"));
                None
            }
            Some(found) => {
                let names = |f: &[usize]| f.iter().map(|&i| candidates[i].name.clone()).collect::<Vec<_>>();
                let preference = pp.get(wanted).or_else(|| pp.get(wanted.trim_end_matches("-native")));
                match preference {
                    Some(pref) => {
                        let want = variant_name(pref.get_ref(), candidates[found[0]].variant);
                        match found.iter().find(|&&i| candidates[i].name == want) {
                            Some(&i) => Some(i),
                            None => {
                                let msg = format!(
                                    "preferred_provider for `{wanted}` is `{}`, which does not provide it; providers: {}",
                                    pref.get_ref(),
                                    names(found).join(", ")
                                );
                                self.problem(pref, &format!("distro.preferred_provider.\"{wanted}\""), msg);
                                None
                            }
                        }
                    }
                    None if found.len() == 1 => Some(found[0]),
                    None => {
                        let all = names(found);
                        self.problem(
                            at,
                            key,
                            format!(
                                "`{wanted}` has {} providers ({}); choose one in [distro]: preferred_provider.\"{wanted}\" = \"{}\"",
                                all.len(),
                                all.join(", "),
                                all[0]
                            ),
                        );
                        None
                    }
                }
            }
        }
    }

    fn apply_rreplaces_rconflicts(&mut self, candidates: &[Candidate], rproviders: &BTreeMap<String, Vec<usize>>, runtime: &mut BTreeSet<usize>) {
        let lookup = |n: &str| rproviders.get(n).cloned().unwrap_or_default();
        let members: Vec<usize> = runtime.iter().copied().collect();
        for &a in &members {
            for replaced in &candidates[a].recipe.rreplaces {
                for b in lookup(&variant_name(replaced.get_ref(), candidates[a].variant)) {
                    if b != a && runtime.remove(&b) {
                        self.warnings.push(format!("{} replaces {} in the image (rreplaces)", candidates[a].name, candidates[b].name));
                    }
                }
            }
        }
        let members: Vec<usize> = runtime.iter().copied().collect();
        for &a in &members {
            for conflict in &candidates[a].recipe.rconflicts {
                for b in lookup(&variant_name(conflict.get_ref(), candidates[a].variant)) {
                    if b != a && runtime.contains(&b) {
                        let msg = format!(
                            "{} conflicts with {}, and both are in the image; drop one, or let one `rreplaces` the other",
                            candidates[a].name, candidates[b].name
                        );
                        self.problem(conflict, &format!("recipe {}.rconflicts", candidates[a].name), msg);
                    }
                }
            }
        }
    }

    /// Depth-first topological sort; a cycle is reported in full.
    fn topo_order(&mut self, candidates: &[Candidate], depends: &[Vec<usize>], build: &BTreeSet<usize>) -> Option<Vec<usize>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut mark = vec![Mark::New; candidates.len()];
        let mut order = Vec::new();
        let mut path: Vec<usize> = Vec::new();
        fn visit(n: usize, depends: &[Vec<usize>], mark: &mut [Mark], path: &mut Vec<usize>, order: &mut Vec<usize>) -> Result<(), Vec<usize>> {
            match mark[n] {
                Mark::Done => return Ok(()),
                Mark::Open => {
                    let start = path.iter().position(|&p| p == n).unwrap();
                    let mut cycle = path[start..].to_vec();
                    cycle.push(n);
                    return Err(cycle);
                }
                Mark::New => {}
            }
            mark[n] = Mark::Open;
            path.push(n);
            for &d in &depends[n] {
                visit(d, depends, mark, path, order)?;
            }
            path.pop();
            mark[n] = Mark::Done;
            order.push(n);
            Ok(())
        }
        for &n in build {
            if let Err(cycle) = visit(n, depends, &mut mark, &mut path, &mut order) {
                let text: Vec<&str> = cycle.iter().map(|&c| candidates[c].name.as_str()).collect();
                let first = candidates[cycle[0]].recipe;
                self.problem(&first.name, &format!("recipe {}.depends", candidates[cycle[0]].name), format!("dependency cycle: {}", text.join(" -> ")));
                return None;
            }
        }
        Some(order)
    }

    fn node(&self, c: &Candidate) -> Node {
        let r = c.recipe;
        let at = |key: &str| {
            let (line, _) = self.loaded.line_col(r.name.span().start);
            format!("{}:{line} [[recipe]] {} {} {key}", self.loaded.path.display(), r.name.get_ref(), r.version.get_ref())
        };
        let mut origin = BTreeMap::new();
        for f in ["version", "class", "license", "source", "depends", "rdepends"].map(String::from).into_iter().chain(Build::fields()) {
            origin.insert(f.clone(), at(&f));
        }
        let mut node = Node {
            name: c.name.clone(),
            recipe: r.name.get_ref().clone(),
            variant: c.variant,
            version: r.version.get_ref().clone(),
            class: r.class,
            license: r.license.clone(),
            summary: r.summary.clone(),
            sources: std::iter::once(r.source.clone()).chain(r.alternatives.iter().cloned()).collect(),
            build: r.build.clone(),
            features: vec![],
            toolchain_needs: Default::default(),
            depends: vec![],
            rdepends: vec![],
            origin,
        };
        if let Some(pv) =
            self.loaded.manifest.distro.preferred_version.get(&c.name).or_else(|| self.loaded.manifest.distro.preferred_version.get(r.name.get_ref()))
        {
            node.origin.insert("version".into(), format!("{} (distro.preferred_version = \"{}\")", at("version"), pv.get_ref()));
        }
        if let Some(o) = overrides(r, c.variant, self.arch) {
            let from = format!("[recipe.arch.{}] of {} {}", override_key(c.variant, self.arch), r.name.get_ref(), r.version.get_ref());
            let set = |field: &str, origin: &mut BTreeMap<String, String>| {
                origin.insert(field.to_string(), from.clone());
            };
            node.build = node.build.overlay(&o.build).expect("overrides are checked when the manifest is read");
            for field in o.build.keys() {
                let how = if field == "env" { format!("{} + {from}", node.origin.get("env").cloned().unwrap_or_default()) } else { from.clone() };
                node.origin.insert(field.clone(), how);
            }
            if !o.configure_append.is_empty() {
                node.build.configure.extend(o.configure_append.iter().cloned());
                let prev = node.origin["configure"].clone();
                node.origin.insert("configure".into(), format!("{prev} + configure_append from {from}"));
            }
            if o.depends.is_some() {
                set("depends", &mut node.origin);
            }
            if o.rdepends.is_some() {
                set("rdepends", &mut node.origin);
            }
        }
        self.apply_packageconfig(r, c.variant, &mut node);
        node
    }

    /// The options of the recipe (or of its override) whose distro feature
    /// is on add their configure arguments, make arguments and environment.
    fn apply_packageconfig(&self, r: &Recipe, variant: Variant, node: &mut Node) {
        let offered = r.packageconfig_for(override_key(variant, self.arch));
        for feature in &self.loaded.manifest.distro.features {
            let Some(pc) = offered.get(feature.get_ref()) else { continue };
            let f = feature.get_ref();
            if variant == Variant::Target && !pc.offered_on(self.arch) {
                continue;
            }
            let why = format!("packageconfig.{f} (distro feature `{f}`)");
            for (field, added) in [
                ("configure", !pc.configure.is_empty()),
                ("make_args", !pc.make_args.is_empty()),
                ("make_args_for_compiler", !pc.make_args_for_compiler.is_empty()),
                ("env", !pc.env.is_empty()),
                ("builtin_modules", !pc.builtin_modules.is_empty()),
            ] {
                if added {
                    let prev = node.origin.get(field).cloned().unwrap_or_default();
                    node.origin.insert(field.into(), format!("{prev} + {why}"));
                }
            }
            node.build.configure.extend(pc.configure.iter().cloned());
            node.build.make_args.extend(pc.make_args.iter().cloned());
            for (compiler, args) in &pc.make_args_for_compiler {
                node.build.make_args_for_compiler.entry(*compiler).or_default().extend(args.iter().cloned());
            }
            node.build.env.extend(pc.env.clone());
            node.build.builtin_modules.extend(pc.builtin_modules.iter().cloned());
            node.features.push(f.clone());
            node.toolchain_needs.extend(pc.toolchain_needs.iter().copied());
        }
    }
}

fn overrides<'r>(r: &'r Recipe, variant: Variant, arch: &str) -> Option<&'r crate::model::manifest::Overrides> {
    r.arch.get(override_key(variant, arch))
}

/// The `[recipe.arch.<key>]` that applies to a variant: `native`, or the arch.
pub fn override_key(variant: Variant, arch: &str) -> &str {
    match variant {
        Variant::Native => "native",
        Variant::Target => arch,
    }
}

/// The name a dependency has from a node of `variant`: native nodes depend
/// on native nodes, as BitBake's native class maps DEPENDS.
fn variant_name(name: &str, variant: Variant) -> String {
    match variant {
        Variant::Native if !name.ends_with("-native") => format!("{name}-native"),
        _ => name.to_string(),
    }
}

fn did_you_mean<'k>(wanted: &str, known: impl Iterator<Item = &'k String>) -> String {
    known
        .map(|k| (strsim::levenshtein(wanted, k), k))
        .filter(|(d, k)| *d <= 2.max(wanted.len() / 3) && !k.is_empty())
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
