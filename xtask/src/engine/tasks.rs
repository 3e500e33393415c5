//! The task graph: every recipe's tasks for every requested arch (native
//! recipes once for all arches), each with a signature that covers every
//! input that can change its output, and the stamps that say a task has
//! already run with exactly those inputs.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::classes::{class_version, WorkDirs};
use crate::machine::toolchain::Toolchain;
use crate::model::manifest::Arch;
use crate::model::resolve::{Graph, Node};

/// Bumped when the engine changes what a task produces.
const ENGINE_VERSION: &str = "engine-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Fetch,
    Unpack,
    Patch,
    PrepareRecipeSysroot,
    Configure,
    Compile,
    Install,
    PopulateSysroot,
    /// The image: the target tree under `sysroots/<arch>`.
    Rootfs,
}

impl Kind {
    pub const RECIPE: [Kind; 8] =
        [Kind::Fetch, Kind::Unpack, Kind::Patch, Kind::PrepareRecipeSysroot, Kind::Configure, Kind::Compile, Kind::Install, Kind::PopulateSysroot];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Fetch => "do_fetch",
            Kind::Unpack => "do_unpack",
            Kind::Patch => "do_patch",
            Kind::PrepareRecipeSysroot => "do_prepare_recipe_sysroot",
            Kind::Configure => "do_configure",
            Kind::Compile => "do_compile",
            Kind::Install => "do_install",
            Kind::PopulateSysroot => "do_populate_sysroot",
            Kind::Rootfs => "do_rootfs",
        }
    }
}

/// Where a unit is built: once for the build machine, or per arch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Native,
    Arch(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Native => f.write_str("native"),
            Scope::Arch(a) => f.write_str(a),
        }
    }
}

/// One recipe in one scope.
pub struct Unit {
    pub scope: Scope,
    pub node: Node,
    /// Build-time closure (unit indices), in build order.
    pub closure: Vec<usize>,
    pub dirs: WorkDirs,
    pub stamps: PathBuf,
}

impl Unit {
    pub fn label(&self) -> String {
        match &self.scope {
            Scope::Native => format!("{} {}", self.node.name, self.node.version),
            Scope::Arch(a) => format!("{} {} ({a})", self.node.name, self.node.version),
        }
    }
}

/// The per-arch inputs of a build.
pub struct ArchBuild {
    pub name: String,
    pub arch: Arch,
    pub graph: Graph,
    pub toolchain: Toolchain,
    /// The toolchain with what some recipes' build options need of it
    /// (`toolchain_needs`), for those recipes only.
    pub toolchain_with_needs: Option<Toolchain>,
    pub config_site: PathBuf,
    /// What `config_site` holds: an input of every target configure.
    pub config_site_text: String,
}

impl ArchBuild {
    /// The toolchain a recipe of this arch builds with.
    pub fn toolchain_for(&self, node: &crate::model::resolve::Node) -> &Toolchain {
        match &self.toolchain_with_needs {
            Some(t) if !node.toolchain_needs.is_empty() => t,
            _ => &self.toolchain,
        }
    }
}

pub struct Task {
    pub kind: Kind,
    /// The recipe unit, or None for the arch's `rootfs`.
    pub unit: Option<usize>,
    /// For `rootfs`: the arch index.
    pub arch: Option<usize>,
    pub deps: Vec<usize>,
    pub sig: String,
    /// The named inputs the signature is made of.
    pub sigdata: BTreeMap<String, String>,
}

pub struct Plan {
    pub build_dir: PathBuf,
    /// The distro's install prefix on the target.
    pub prefix: String,
    pub python: crate::python::crosspip::PythonPackages,
    /// The boards' C library (what the image may leave to the board).
    pub libc: crate::model::manifest::Libc,
    pub units: Vec<Unit>,
    pub arches: Vec<ArchBuild>,
    pub tasks: Vec<Task>,
    /// (unit, kind) -> task index
    index: BTreeMap<(usize, Kind), usize>,
}

pub struct PlanInputs<'a> {
    pub build_dir: &'a Path,
    /// pip requirements cross-installed into the image, and how.
    pub python: &'a crate::python::crosspip::PythonPackages,
    /// Versions of the code that assembles the image (`crosspip`, `image`),
    /// handed down so this layer names no module above it.
    pub image_code: [(&'static str, &'static str); 2],
    pub patches_dir: &'a Path,
    pub prefix: &'a str,
    pub host_identity: &'a str,
    pub libc: &'a crate::model::manifest::Libc,
}

impl Plan {
    /// The artifact-cache name of a unit's output: scope, recipe, version.
    pub fn sstate_name(&self, u: usize) -> String {
        let unit = &self.units[u];
        format!("{}-{}-{}", unit.scope, unit.node.name, unit.node.version)
    }

    pub fn new(inp: PlanInputs, arches: Vec<ArchBuild>) -> Result<Plan> {
        let mut plan = Plan {
            build_dir: inp.build_dir.to_path_buf(),
            prefix: inp.prefix.to_string(),
            python: inp.python.clone(),
            libc: inp.libc.clone(),
            units: vec![],
            arches: vec![],
            tasks: vec![],
            index: BTreeMap::new(),
        };
        let mut by_key: BTreeMap<(Scope, String), usize> = BTreeMap::new();
        for (ai, ab) in arches.iter().enumerate() {
            let g = &ab.graph;
            // Unit index of each graph node.
            let mut unit_of = Vec::with_capacity(g.nodes.len());
            for (ni, node) in g.nodes.iter().enumerate() {
                let scope = if node.is_native() { Scope::Native } else { Scope::Arch(ab.name.clone()) };
                let key = (scope.clone(), node.name.clone());
                if let Some(&u) = by_key.get(&key) {
                    unit_of.push(u);
                    continue;
                }
                let mut closure: Vec<usize> = g.depends_closure(ni).iter().map(|&d| unit_of[d]).collect();
                closure.sort();
                let dirname = format!("{}-{}", node.name, node.version);
                let root = inp.build_dir.join(scope.to_string());
                let unit = Unit {
                    scope,
                    node: node.clone(),
                    closure,
                    dirs: WorkDirs::new(root.join("work").join(&dirname)),
                    stamps: root.join("stamps").join(&dirname),
                };
                let u = plan.units.len();
                plan.units.push(unit);
                by_key.insert(key, u);
                unit_of.push(u);
                plan.add_unit_tasks(u, ab, &inp)?;
            }
            // The image of this arch.
            let mut sigdata = BTreeMap::new();
            sigdata.insert("engine".into(), ENGINE_VERSION.into());
            sigdata.insert("arch".into(), ab.arch.build_inputs());
            sigdata.insert("toolchain".into(), ab.toolchain.identity());
            sigdata.insert("prefix".into(), inp.prefix.into());
            sigdata.insert("python packages".into(), serde_json::to_string(inp.python)?);
            for (k, v) in inp.image_code {
                sigdata.insert(k.into(), v.into());
            }
            sigdata.insert("libc".into(), format!("board has {:?}; glibc {:?}", inp.libc.glibc_sonames, ab.toolchain.glibc));
            let mut deps = vec![];
            for &r in &g.runtime {
                let u = unit_of[r];
                let t = plan.index[&(u, Kind::PopulateSysroot)];
                sigdata.insert(format!("runtime {}", plan.units[u].node.name), plan.tasks[t].sig.clone());
                deps.push(t);
            }
            // The build python installs pip and the packages.
            for (ni, node) in g.nodes.iter().enumerate() {
                if node.is_native() && node.recipe == "python3" {
                    let t = plan.index[&(unit_of[ni], Kind::PopulateSysroot)];
                    sigdata.insert(format!("tool {}", node.name), plan.tasks[t].sig.clone());
                    deps.push(t);
                }
            }
            plan.push(Task { kind: Kind::Rootfs, unit: None, arch: Some(ai), deps, sig: String::new(), sigdata });
        }
        plan.arches = arches;
        Ok(plan)
    }

    fn push(&mut self, mut task: Task) -> usize {
        task.sig = signature(&task.sigdata);
        let i = self.tasks.len();
        if let Some(u) = task.unit {
            self.index.insert((u, task.kind), i);
        }
        self.tasks.push(task);
        i
    }

    fn add_unit_tasks(&mut self, u: usize, ab: &ArchBuild, inp: &PlanInputs) -> Result<()> {
        let closure = self.units[u].closure.clone();
        let scope = self.units[u].scope.clone();
        let node = self.units[u].node.clone();
        let node = &node;
        let mut prev: Option<usize> = None;
        for kind in Kind::RECIPE {
            let mut sigdata: BTreeMap<String, String> = BTreeMap::new();
            sigdata.insert("engine".into(), ENGINE_VERSION.into());
            let mut deps = vec![];
            if let Some(p) = prev {
                sigdata.insert(format!("previous {}", self.tasks[p].kind.name()), self.tasks[p].sig.clone());
                deps.push(p);
            }
            match kind {
                Kind::Fetch => {
                    sigdata.insert("sources".into(), serde_json::to_string(&node.sources)?);
                }
                Kind::Patch => {
                    for (name, sha) in patch_files(inp.patches_dir, node)? {
                        sigdata.insert(format!("patch {name}"), sha);
                    }
                }
                Kind::PrepareRecipeSysroot => {
                    for &d in &closure {
                        let t = self.index[&(d, Kind::PopulateSysroot)];
                        sigdata.insert(format!("sysroot of {}", self.units[d].node.name), self.tasks[t].sig.clone());
                        deps.push(t);
                    }
                }
                Kind::Configure => {
                    sigdata.insert("classes".into(), class_version(node.class));
                    sigdata.insert("SOURCE_DATE_EPOCH".into(), crate::base::reproducible::source_date_epoch()?.to_string());
                    sigdata.insert("recipe".into(), recipe_fields(node)?);
                    match scope {
                        Scope::Native => {
                            sigdata.insert("host compiler".into(), inp.host_identity.into());
                        }
                        Scope::Arch(_) => {
                            sigdata.insert("arch".into(), ab.arch.build_inputs());
                            sigdata.insert("config_site".into(), ab.config_site_text.clone());
                            sigdata.insert("toolchain".into(), ab.toolchain_for(node).identity());
                            sigdata.insert("prefix".into(), inp.prefix.into());
                        }
                    }
                    if let Ok(l) = std::env::var("CROSSPYTHON_CC_LAUNCHER") {
                        // A launcher does not change the output, but a
                        // broken one must not leave a stamp behind that
                        // hides it; it is recorded for --explain only.
                        sigdata.insert("launcher".into(), l);
                    }
                }
                _ => {}
            }
            let i = self.push(Task { kind, unit: Some(u), arch: None, deps, sig: String::new(), sigdata });
            prev = Some(i);
        }
        Ok(())
    }

    pub fn task(&self, unit: usize, kind: Kind) -> usize {
        self.index[&(unit, kind)]
    }

    pub fn label(&self, t: usize) -> String {
        let task = &self.tasks[t];
        match (task.unit, task.arch) {
            (Some(u), _) => format!("{}: {}", self.units[u].label(), task.kind.name()),
            (None, Some(a)) => format!("image ({}): {}", self.arches[a].name, task.kind.name()),
            _ => unreachable!("a task belongs to a unit or an arch"),
        }
    }

    /// Directory of the stamps of task `t`.
    pub fn stamp_dir(&self, t: usize) -> PathBuf {
        let task = &self.tasks[t];
        match (task.unit, task.arch) {
            (Some(u), _) => self.units[u].stamps.clone(),
            (None, Some(a)) => self.build_dir.join(&self.arches[a].name).join("stamps/image"),
            _ => unreachable!(),
        }
    }

    pub fn stamp_path(&self, t: usize) -> PathBuf {
        self.stamp_dir(t).join(format!("{}.{}", self.tasks[t].kind.name(), self.tasks[t].sig))
    }

    pub fn is_stamped(&self, t: usize) -> bool {
        self.stamp_path(t).exists()
    }

    /// Record that task `t` ran: sigdata for --explain, then the stamp,
    /// last and atomically. Older stamps of the task are removed.
    pub fn write_stamp(&self, t: usize) -> Result<()> {
        let dir = self.stamp_dir(t);
        fs::create_dir_all(&dir)?;
        let name = self.tasks[t].kind.name();
        for e in fs::read_dir(&dir)?.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if f.starts_with(&format!("{name}.")) {
                let _ = fs::remove_file(e.path());
            }
        }
        atomic_write(&dir.join(format!("{name}.sigdata.json")), &serde_json::to_vec_pretty(&self.tasks[t].sigdata)?)?;
        atomic_write(&self.stamp_path(t), b"")
    }

    /// Why task `t` must run, from the sigdata of its last run.
    pub fn explain(&self, t: usize) -> String {
        let path = self.stamp_dir(t).join(format!("{}.sigdata.json", self.tasks[t].kind.name()));
        let old: BTreeMap<String, String> = match fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            Some(o) => o,
            None => return "never ran here before".into(),
        };
        let new = &self.tasks[t].sigdata;
        let mut changed = vec![];
        for (k, v) in new {
            match old.get(k) {
                None => changed.push(format!("new input `{k}`")),
                Some(o) if o != v => changed.push(format!("`{k}` changed")),
                _ => {}
            }
        }
        for k in old.keys().filter(|k| !new.contains_key(*k)) {
            changed.push(format!("input `{k}` is gone"));
        }
        if changed.is_empty() {
            "inputs unchanged, but the stamp is missing (interrupted or cleaned)".into()
        } else {
            changed.join(", ")
        }
    }
}

/// The recipe's build fields, canonically serialized.
fn recipe_fields(n: &Node) -> Result<String> {
    // Every field of `Build`, flattened beside class and version (the JSON
    // of the hand-written list this replaced, so signatures carried over).
    #[derive(serde::Serialize)]
    struct Fields<'a> {
        class: crate::model::manifest::Class,
        version: &'a str,
        #[serde(flatten)]
        build: &'a crate::model::manifest::Build,
    }
    Ok(serde_json::to_string(&Fields { class: n.class, version: &n.version, build: &n.build })?)
}

/// The patches of a recipe, in order: `patches/<recipe>/common/` then
/// `patches/<recipe>/<version>/`, each followed by its subdirectories named
/// for the build options (packageconfig) the node has on, as BitBake's
/// `SRC_URI:append` under `bb.utils.contains('PACKAGECONFIG', ...)`. A
/// `series` file in a directory gives its order, otherwise file names do.
pub fn patch_files(patches_dir: &Path, node: &Node) -> Result<Vec<(String, String)>> {
    let mut out = vec![];
    for sub in ["common", node.version.as_str()] {
        let dir = patches_dir.join(&node.recipe).join(sub);
        for dir in std::iter::once(dir.clone()).chain(node.features.iter().map(|f| dir.join(f))) {
            for path in patch_series(&dir)? {
                let sha = crate::sources::fetch::sha256_file(&path)?;
                out.push((path.strip_prefix(patches_dir).unwrap_or(&path).display().to_string(), sha));
            }
        }
    }
    Ok(out)
}

/// The patches of one directory (none when it is not there), in the order
/// of its `series` file or else by name.
fn patch_series(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let names: Vec<String> = match fs::read_to_string(dir.join("series")) {
        Ok(series) => series.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect(),
        Err(_) => {
            let mut n: Vec<String> = fs::read_dir(dir)?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".patch") || n.ends_with(".diff"))
                .collect();
            n.sort();
            n
        }
    };
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            if !path.exists() {
                bail!("{}: the series names {name}, which is not there", dir.join("series").display());
            }
            Ok(path)
        })
        .collect()
}

fn signature(sigdata: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in sigdata {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Write a file through a temporary file in the same directory and a rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("a file path has a parent");
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    normal_mode(tmp.as_file())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Give a file made through a temporary name (0600) the mode any new file
/// gets (0666 less the umask): caches and deploy outputs are for people.
pub fn normal_mode(file: &fs::File) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let umask = *UMASK.get_or_init(|| {
        // SAFETY: umask has no preconditions; it is set straight back.
        unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m as u32
        }
    });
    file.set_permissions(fs::Permissions::from_mode(0o666 & !umask))?;
    Ok(())
}
