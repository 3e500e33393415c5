//! `cargo xtask pip --arch <a> install <spec>...`: ad-hoc installs into
//! the staged tree `sysroots/<arch>`, all or nothing.
//!
//! Everything that can fail happens in a staging directory first: pip
//! resolves for the target, sdists are built in the crossenv, the wheels
//! are installed into the staging root, their ELF files checked (target
//! machine, every `DT_NEEDED` in the tree or added from the toolchain, no
//! build path), their top-level modules imported on the target under qemu
//! (a wheel that installs but does not import is refused: bcrypt built
//! without its Rust extension), and their files compared with the tree. Only then are files
//! moved into the tree, so a failure leaves the tree as it was. The tree is
//! assembled again by the next `build` when its inputs change: packages
//! meant to stay belong in the manifest's `python_packages`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use walkdir::WalkDir;

use crate::engine::image::{ImageNote, WheelNote};
use crate::engine::project::{BuildLock, Project};
use crate::model::manifest::Loaded;
use crate::python::crosspip;

pub struct Request<'a> {
    pub arch: &'a str,
    pub toolchain: Option<&'a str>,
    pub specs: &'a [String],
    pub requirements: Option<&'a Path>,
    pub no_binary: &'a [String],
}

pub fn install(project: &Project, loaded: &Loaded, r: &Request) -> Result<()> {
    let _lock = BuildLock::take(&project.build_dir, false)?;
    let tree = project.tree(r.arch);
    let mut note = ImageNote::read(&tree).with_context(|| format!("no tree for {}: run `cargo xtask build --arch {}` first", r.arch, r.arch))?;
    let mut specs = r.specs.to_vec();
    if let Some(file) = r.requirements {
        specs.extend(crate::model::manifest::read_requirements(file)?);
    }
    if specs.is_empty() {
        bail!("nothing to install: give requirement specifiers, wheel files or -r <requirements file>");
    }
    let mut target = project.last_target(r.arch);
    if let Some(t) = r.toolchain {
        target.toolchain = Some(t.to_string());
    }
    let plan = project.plan(loaded, &[r.arch.to_string()], &target)?;
    let ab = &plan.arches[0];
    let python = plan.units.iter().find(|u| u.node.recipe == "python3" && !u.node.is_native()).context("the image has no python3")?;
    let native = plan.units.iter().find(|u| u.node.recipe == "python3" && u.node.is_native()).context("no python3-native")?;
    let pyver = python.node.pv().major_minor();
    let host_python = python.dirs.sysroot_destdir.join(plan.prefix.trim_start_matches('/')).join(format!("bin/python{pyver}"));
    let native_python = native.dirs.sysroot_destdir.join(format!("usr/bin/python{pyver}"));
    if !host_python.exists() || !native_python.exists() {
        bail!("the build of {} is incomplete ({} missing); run `cargo xtask build --arch {}`", r.arch, host_python.display(), r.arch);
    }
    let work = project.build_dir.join(r.arch).join("pip");
    fs::create_dir_all(work.join("temp"))?;
    let log_path = work.join("temp/log.pip_install");
    let mut log = String::new();
    let board_root = project.board_root(loaded, r.arch, &target)?;
    let job = Job {
        project,
        plan: &plan,
        ab,
        tree: &tree,
        host_python: &host_python,
        pyver,
        work: &work,
        board_root: &board_root,
        target: &target,
        config_settings: loaded.python_config_settings(&loaded.manifest.python_package.keys().cloned().collect::<Vec<_>>()),
    };
    let mut added = AddedRecipes::default();
    let result = job.run(&mut note, &mut added, &native_python, &specs, r.no_binary, &mut log);
    match (&result, added.is_empty()) {
        (Err(_), false) => added.take_out(&tree, &mut note)?,
        (Ok(_), false) => crate::engine::tasks::atomic_write(&tree.join(crate::engine::image::IMAGE_NOTE), &serde_json::to_vec_pretty(&note)?)?,
        _ => {}
    }
    let result = result.map(|summary| added.summary() + &summary);
    crate::engine::tasks::atomic_write(&log_path, log.as_bytes())?;
    match result {
        Ok(summary) => {
            print!("{summary}");
            Ok(())
        }
        Err(e) => {
            let hint = e.downcast_ref::<crosspip::MissingLibrary>().map(|m| recipe_hint(loaded, m));
            let e = match hint {
                Some(hint) => e.context(hint),
                None => e,
            };
            let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            eprintln!("{}\n(log: {})", tail.join("\n"), log_path.display());
            Err(e.context(format!("pip install for {} failed; the tree {} is unchanged", r.arch, tree.display())))
        }
    }
}

/// Which recipe would give a source build the library it missed, and
/// where to say that the package needs it.
fn recipe_hint(loaded: &Loaded, m: &crosspip::MissingLibrary) -> String {
    // `libxml/xmlversion.h`, `libxml-2.0`, `xslt`, `ZeroMQ` -> xml, xml, xslt, zeromq
    let key = |name: &str| -> String {
        let name = name.split('/').next().unwrap_or(name).trim_end_matches(".h").to_ascii_lowercase();
        let name = name.strip_prefix("lib").unwrap_or(&name);
        name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-').to_string()
    };
    let want = key(&m.what);
    let recipe =
        loaded.manifest.recipes.iter().find(|r| std::iter::once(r.name.get_ref()).chain(r.provides.iter().map(|p| p.get_ref())).any(|n| key(n) == want));
    let manifest = loaded.path.display();
    match recipe {
        Some(r) => format!(
            "the recipe {} provides it: add it to `depends` of [python_package.{}] in {manifest}, and pip builds it into the tree first",
            r.name.get_ref(),
            m.project
        ),
        None => format!("no recipe of {manifest} provides it: add a [[recipe]] for it and name it in `depends` of [python_package.{}]", m.project),
    }
}

/// Files moved from a staging root into the tree.
#[derive(Default)]
struct Moved {
    /// Relative to the tree.
    files: Vec<String>,
    /// Directories made in the tree (absolute), parents first.
    dirs: Vec<PathBuf>,
}

/// Recipes installed into the tree for the packages being installed.
#[derive(Default)]
struct AddedRecipes {
    recipes: Vec<String>,
    moved: Moved,
}

impl AddedRecipes {
    fn is_empty(&self) -> bool {
        self.recipes.is_empty()
    }

    fn extend(&mut self, more: AddedRecipes) {
        self.recipes.extend(more.recipes);
        self.moved.files.extend(more.moved.files);
        self.moved.dirs.extend(more.moved.dirs);
    }

    fn summary(&self) -> String {
        self.recipes.iter().map(|r| format!("  recipe {r}: built and installed for the packages below\n")).collect()
    }

    /// The install failed: the tree goes back to what it was.
    fn take_out(&self, tree: &Path, note: &mut ImageNote) -> Result<()> {
        for rel in self.moved.files.iter().rev() {
            let path = tree.join(rel);
            if path.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                fs::remove_file(&path).with_context(|| format!("cannot take {} out of the tree again", path.display()))?;
            }
            note.owners.remove(rel);
        }
        for dir in self.moved.dirs.iter().rev() {
            let _ = fs::remove_dir(dir); // only when empty
        }
        Ok(())
    }
}

/// The C libraries that the requested packages link (their
/// `[python_package.<project>] depends`) and that the tree was built
/// without: built (or taken from the artifact cache) with the features the
/// tree was built with, checked as the tree's files are, and installed into
/// the tree before pip builds against it. Their files conflict with none of
/// the tree's; they are recorded as the recipes' in the image note.
fn add_recipes(
    project: &Project,
    arch: &str,
    target: &crate::engine::project::Target,
    specs: &[String],
    tree: &Path,
    note: &mut ImageNote,
    log: &mut String,
) -> Result<AddedRecipes> {
    use crate::engine::image::Owner;
    let mut loaded = project.load()?;
    if loaded.python_package_entries(specs).iter().all(|(_, p)| p.depends.is_empty()) {
        return Ok(AddedRecipes::default());
    }
    let features: std::collections::BTreeSet<String> = note.features.values().flatten().cloned().collect();
    loaded.enable_features(&features.into_iter().collect::<Vec<_>>())?;
    let runtime = |loaded: &Loaded| -> Result<std::collections::BTreeSet<String>> {
        let g = crate::model::resolve::resolve(loaded, arch)?;
        Ok(g.runtime.iter().map(|&n| g.nodes[n].recipe.clone()).collect())
    };
    let before = runtime(&loaded)?;
    loaded.manifest.distro.python_packages.extend(specs.iter().cloned());
    let in_tree: std::collections::BTreeSet<&str> =
        note.owners.values().filter_map(|o| if let Owner::Recipe(r) = o { Some(r.as_str()) } else { None }).collect();
    let new: Vec<String> = runtime(&loaded)?.into_iter().filter(|r| !before.contains(r) && !in_tree.contains(r.as_str())).collect();
    if new.is_empty() {
        return Ok(AddedRecipes::default());
    }
    let plan = project.plan(&loaded, &[arch.to_string()], target)?;
    let units: Vec<usize> = (0..plan.units.len()).filter(|&u| !plan.units[u].node.is_native() && new.contains(&plan.units[u].node.recipe)).collect();
    eprintln!("crosspython: {arch}: building {} for {}", new.join(", "), specs.join(" "));
    let worker = crate::engine::work::Worker::for_project(project, &loaded)?;
    let sstate = crate::engine::sstate::Sstate::new(project.sstate_dir.clone()).with_keys(crate::base::signing::from_env()?);
    let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let only = units.iter().map(|&u| plan.units[u].node.name.clone()).collect();
    crate::engine::scheduler::run(&plan, &worker, &sstate, &crate::engine::scheduler::Options { jobs, explain: false, rebuild: vec![], only })?;

    // Staged and checked as the tree's own files, then moved in.
    let staging = tempfile::tempdir_in(tree.parent().unwrap_or(tree))?;
    for &u in &units {
        crate::base::sysroot::copy_tree(&plan.units[u].dirs.sysroot_destdir, staging.path())?;
    }
    let mut report = String::new();
    crate::engine::image::scrub_build_paths_of(&plan, &units, staging.path(), &mut report)?;
    let ab = &plan.arches[0];
    let present = crate::machine::tree_check::tree_libraries(tree);
    let board = crate::machine::tree_check::BoardLibs::new(&plan.libc, ab.arch.libc, ab.toolchain.glibc);
    crate::engine::image::add_toolchain_libs_beside(staging.path(), &plan.prefix, &present, &board, &ab.toolchain, &mut report)?;
    crate::engine::image::set_run_paths_beside(staging.path(), tree, &plan.prefix, &mut report)?;
    log.push_str(&report);
    // As rootfs checks the recipes' files: build paths in their debug
    // information (zig's cached compiler-rt objects name the directory of
    // the build that first compiled them) are blanked by `package`.
    check_staged(staging.path(), &present, &board, &ab.arch.elf, &[])?;
    let owners: BTreeMap<String, String> = units
        .iter()
        .flat_map(|&u| {
            let unit = &plan.units[u];
            WalkDir::new(&unit.dirs.sysroot_destdir).min_depth(1).into_iter().flatten().filter_map(move |e| {
                let rel = e.path().strip_prefix(&unit.dirs.sysroot_destdir).ok()?.display().to_string();
                Some((rel, unit.node.recipe.clone()))
            })
        })
        .collect();
    let conflicts = conflicts(staging.path(), tree, note, &[])?;
    if !conflicts.is_empty() {
        bail!("{} would overwrite files of the tree:\n  {}", new.join(", "), conflicts.join("\n  "));
    }
    let moved = move_into_tree(staging.path(), tree, note, |rel| owners.get(rel).map_or(Owner::Toolchain, |r| Owner::Recipe(r.clone())))?;
    let added = AddedRecipes { recipes: new, moved };
    Ok(added)
}

/// One ad-hoc install into the tree of an arch.
struct Job<'a> {
    project: &'a Project,
    plan: &'a crate::engine::tasks::Plan,
    ab: &'a crate::engine::tasks::ArchBuild,
    tree: &'a Path,
    /// The target interpreter as built (its sysconfig drives the crossenv).
    host_python: &'a Path,
    pyver: String,
    work: &'a Path,
    /// The board root the target interpreter runs on for the import check.
    board_root: &'a Path,
    /// The toolchain and board the tree was built for.
    target: &'a crate::engine::project::Target,
    /// pip's `--config-settings` of every `[python_package]`, by project.
    config_settings: BTreeMap<String, Vec<String>>,
}

/// What the wheels change: the new ones, the RECORDs of the versions they
/// replace, and a line per package.
struct Choice {
    fresh: Vec<PathBuf>,
    replaced: Vec<PathBuf>,
    summary: String,
}

impl<'a> Job<'a> {
    fn run(
        &self,
        note: &mut ImageNote,
        added: &mut AddedRecipes,
        native_python: &Path,
        specs: &[String],
        no_binary: &[String],
        log: &mut String,
    ) -> Result<String> {
        let bp = crosspip::BuildPython::ensure(native_python, &self.project.build_dir.join("native/pip-venv"), log)?;
        let target = self.target(self.tree)?;
        for spec in specs.iter().filter(|s| s.ends_with(".whl")) {
            target.check_wheel_fits(spec)?;
        }
        let build_dir = &self.project.build_dir;
        let mut session =
            crosspip::Session::new(bp, target, &self.plan.python, build_dir, &build_dir.join(&self.ab.name), &self.ab.toolchain, self.host_python)?;
        session.config_settings.extend(self.config_settings.clone());
        let downloads = tempfile::tempdir_in(self.work)?;
        // A package built here links the tree's libraries: its recipes
        // come first (a wheel from the index brings its own).
        let mut own_wheel = |req: &str, log: &mut String| -> Result<()> {
            added.extend(add_recipes(self.project, &self.ab.name, self.target, &[req.to_string()], self.tree, note, log)?);
            Ok(())
        };
        let wheels = session.wheels(specs, no_binary, downloads.path(), log, &mut own_wheel)?;
        let choice = self.choose(&wheels, log)?;
        if choice.fresh.is_empty() {
            return Ok(format!("{}: nothing to do\n{}", self.ab.name, choice.summary));
        }
        let staging = tempfile::tempdir_in(self.work)?;
        let replaced_files = self.stage(&session.bp, &choice, staging.path(), note, log).map_err(|e| {
            // What was suspicious in the choice explains most refusals.
            let warnings: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("WARNING ")).collect();
            if warnings.is_empty() {
                e
            } else {
                e.context(format!("warning: {}", warnings.join("\nwarning: ")))
            }
        })?;
        self.commit(staging.path(), &choice, &replaced_files, note)?;
        Ok(format!("{}: installed into {}\n{}", self.ab.name, self.tree.display(), choice.summary))
    }

    fn target<'r>(&self, root: &'r Path) -> Result<crosspip::Target<'r>>
    where
        'a: 'r,
    {
        let mut t = crosspip::Target::new(&self.ab.name, &self.ab.arch, root, &self.plan.prefix, self.pyver.clone(), &self.ab.toolchain)?;
        // The staging root is empty: the interpreter's layout (lib/python3.14t
        // when free-threaded) is the tree's.
        t.ldversion = crosspip::ldversion(self.tree, &self.plan.prefix, &self.pyver);
        t.relr_from = crate::machine::tree_check::BoardLibs::new(&self.plan.libc, self.ab.arch.libc, self.ab.toolchain.glibc).relr_from;
        Ok(t)
    }

    /// New, upgraded or already there, against the tree's dist-infos.
    fn choose(&self, wheels: &[PathBuf], log: &str) -> Result<Choice> {
        let installed = installed_dists(self.tree, &self.plan.prefix, &crosspip::ldversion(self.tree, &self.plan.prefix, &self.pyver))?;
        let mut c = Choice { fresh: vec![], replaced: vec![], summary: String::new() };
        for w in wheels {
            let crosspip::WheelFile { project: name, version, .. } = crosspip::WheelFile::parse(w)?;
            match installed.get(&name) {
                Some((v, _)) if *v == version => writeln!(c.summary, "  {name} {version}: already installed")?,
                Some((v, record)) => {
                    writeln!(c.summary, "  {name} {v} -> {version}")?;
                    c.replaced.push(record.clone());
                    c.fresh.push(w.clone());
                }
                None => {
                    writeln!(c.summary, "  {name} {version}: new")?;
                    c.fresh.push(w.clone());
                }
            }
        }
        for route in log.lines().filter_map(|l| l.strip_prefix("ROUTE ")) {
            writeln!(c.summary, "  route {route}")?;
        }
        for warning in log.lines().filter_map(|l| l.strip_prefix("WARNING ")) {
            writeln!(c.summary, "  warning: {warning}")?;
        }
        Ok(c)
    }

    /// Install into `root`, laid out like the tree, and check it there:
    /// ELF files fit the board, and no file of the tree is overwritten
    /// unless a replaced version owns it. Returns the replaced files.
    fn stage(&self, bp: &crosspip::BuildPython, c: &Choice, root: &Path, note: &ImageNote, log: &mut String) -> Result<Vec<PathBuf>> {
        let tree = self.tree;
        crosspip::install_wheels(bp, &self.target(root)?, &c.fresh, log)?;
        let mut report = String::new();
        let present = crate::machine::tree_check::tree_libraries(tree);
        let board = crate::machine::tree_check::BoardLibs::new(&self.plan.libc, self.ab.arch.libc, self.ab.toolchain.glibc);
        crate::engine::image::add_toolchain_libs_beside(root, &self.plan.prefix, &present, &board, &self.ab.toolchain, &mut report)?;
        crate::engine::image::set_run_paths_beside(root, tree, &self.plan.prefix, &mut report)?;
        log.push_str(&report);
        check_staged(root, &present, &board, &self.ab.arch.elf, &[self.project.build_dir.clone(), root.to_path_buf()])?;
        self.check_imports(root, log)?;
        let replaced_files: Vec<PathBuf> = c.replaced.iter().map(|r| crate::engine::image::record_files(r, tree)).collect::<Result<Vec<_>>>()?.concat();
        let conflicts = conflicts(root, tree, note, &replaced_files)?;
        if !conflicts.is_empty() {
            bail!("the new packages would overwrite files they do not own:\n  {}", conflicts.join("\n  "));
        }
        Ok(replaced_files)
    }

    /// Import every top-level module of every staged distribution with the
    /// tree's interpreter on the board root, under qemu.
    fn check_imports(&self, root: &Path, log: &mut String) -> Result<()> {
        let ldversion = crosspip::ldversion(self.tree, &self.plan.prefix, &self.pyver);
        let site = root.join(self.plan.prefix.trim_start_matches('/')).join(format!("lib/python{ldversion}/site-packages"));
        let python = self.tree.join(self.plan.prefix.trim_start_matches('/')).join("bin/python3");
        // The staged files' `$ORIGIN` run paths point into the staging root;
        // the libraries they will find in the tree once moved (libstdc++ of
        // the runtime libraries, for pyzmq) are given by the search path.
        let lib = |root: &Path| root.join(self.plan.prefix.trim_start_matches('/')).join("lib").display().to_string();
        let runner = crate::machine::runner::TargetRunner::new(&self.ab.arch, self.board_root);
        crate::python::import_check::run(&runner, &python, &site, &format!("{}:{}", lib(root), lib(self.tree)), &self.ab.name, log)
    }

    /// Move the staged files into the tree and record their owners. Nothing
    /// can fail for a reason of the packages any more.
    fn commit(&self, root: &Path, c: &Choice, replaced_files: &[PathBuf], note: &mut ImageNote) -> Result<()> {
        let tree = self.tree;
        for f in replaced_files {
            let _ = fs::remove_file(f);
            note.owners.remove(&f.strip_prefix(tree).unwrap().display().to_string());
        }
        let new_owners = crate::engine::image::record_owners(root)?;
        move_into_tree(root, tree, note, |rel| new_owners.get(rel).cloned().unwrap_or(crate::engine::image::Owner::Toolchain))?;
        for w in &c.fresh {
            note.wheels.push(WheelNote { file: w.file_name().unwrap().to_string_lossy().into_owned(), sha256: crate::sources::fetch::sha256_file(w)? });
        }
        crate::engine::tasks::atomic_write(&tree.join(crate::engine::image::IMAGE_NOTE), &serde_json::to_vec_pretty(note)?)
    }
}

/// Files staged in `root` that the tree has already (a dangling link
/// counts), but for the `replaced` ones, each with its owner.
fn conflicts(root: &Path, tree: &Path, note: &ImageNote, replaced: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = vec![];
    for e in WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(root).unwrap();
        let dest = tree.join(rel);
        if !e.file_type().is_dir() && dest.symlink_metadata().is_ok() && !replaced.contains(&dest) {
            let owner = note.owners.get(&rel.display().to_string()).map_or("the tree".to_string(), |o| o.to_string());
            out.push(format!("{} (owned by {owner})", rel.display()));
        }
    }
    Ok(out)
}

/// Move what is staged in `root` into `tree` by renames, recording each
/// file's owner in the image note. Nothing here can fail for a reason of
/// the packages any more.
fn move_into_tree(root: &Path, tree: &Path, note: &mut ImageNote, owner: impl Fn(&str) -> crate::engine::image::Owner) -> Result<Moved> {
    let mut moved = Moved::default();
    for e in WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(root).unwrap();
        let dest = tree.join(rel);
        if e.file_type().is_dir() {
            if !dest.exists() {
                fs::create_dir(&dest).with_context(|| format!("cannot make {} in the tree", rel.display()))?;
                moved.dirs.push(dest);
            }
        } else {
            fs::rename(e.path(), &dest).with_context(|| format!("cannot move {} into the tree", rel.display()))?;
            let rel = rel.display().to_string();
            note.owners.insert(rel.clone(), owner(&rel));
            moved.files.push(rel);
        }
    }
    Ok(moved)
}

/// Every ELF file staged: the target's machine, every `DT_NEEDED` in the
/// staging root or the tree; no file holds a build-machine path.
fn check_staged(
    root: &Path,
    present: &BTreeMap<String, PathBuf>,
    board: &crate::machine::tree_check::BoardLibs,
    want: &crate::model::manifest::ElfExpect,
    build_paths: &[PathBuf],
) -> Result<()> {
    let check = crate::machine::tree_check::TreeCheck {
        beside: present.clone(),
        build_paths: build_paths.to_vec(),
        ..crate::machine::tree_check::TreeCheck::new(want, board)
    };
    check.run(root, "the new packages")?;
    Ok(())
}

/// Installed distributions of the tree: normalized name -> (version, RECORD).
fn installed_dists(tree: &Path, prefix: &str, ldversion: &str) -> Result<BTreeMap<String, (String, PathBuf)>> {
    let site = tree.join(prefix.trim_start_matches('/')).join(format!("lib/python{ldversion}/site-packages"));
    let mut out = BTreeMap::new();
    for e in fs::read_dir(&site).with_context(|| format!("cannot read {}", site.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".dist-info") {
            if let Some((project, version)) = stem.rsplit_once('-') {
                out.insert(crosspip::project_name(project), (version.to_string(), e.path().join("RECORD")));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_traced_to_the_recipe_that_provides_it() {
        let text = crate::model::manifest::tests::MINIMAL.replace("name = \"a\"", "name = \"libxml2\"\nprovides = [\"libxml-2.0\"]");
        let loaded = Loaded::parse(Path::new("m.toml"), text).unwrap();
        let missing = |what: &str| crosspip::MissingLibrary { project: "lxml".into(), what: what.into(), line: String::new() };
        for what in ["libxml/xmlversion.h", "libxml-2.0", "xml2"] {
            let hint = recipe_hint(&loaded, &missing(what));
            assert!(hint.starts_with("the recipe libxml2 provides it: add it to `depends` of [python_package.lxml]"), "{what}: {hint}");
        }
        let hint = recipe_hint(&loaded, &missing("jpeglib.h"));
        assert!(hint.starts_with("no recipe of m.toml provides it: add a [[recipe]]"), "{hint}");
    }

    #[test]
    fn staged_files_conflict_with_the_trees_own_unless_they_replace_them() {
        let (root, tree) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for dir in [root.path(), tree.path()] {
            fs::create_dir_all(dir.join("lib")).unwrap();
        }
        for f in ["lib/libz.so.1", "lib/old.py", "lib/link", "lib/new.so"] {
            fs::write(root.path().join(f), "").unwrap();
        }
        fs::write(tree.path().join("lib/libz.so.1"), "").unwrap();
        fs::write(tree.path().join("lib/old.py"), "").unwrap();
        std::os::unix::fs::symlink("nowhere", tree.path().join("lib/link")).unwrap();
        let mut note = ImageNote::default();
        note.owners.insert("lib/libz.so.1".into(), crate::engine::image::Owner::Recipe("zlib".into()));
        let found = conflicts(root.path(), tree.path(), &note, &[tree.path().join("lib/old.py")]).unwrap();
        assert_eq!(found, ["lib/libz.so.1 (owned by recipe:zlib)", "lib/link (owned by the tree)"], "a dangling link counts; a replaced file does not");
    }

    #[test]
    fn recipes_added_for_a_failed_install_are_taken_out_with_the_directories_they_made() {
        let (staging, tree) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let lib = "usr/local/lib";
        fs::create_dir_all(tree.path().join(lib)).unwrap();
        fs::write(tree.path().join(lib).join("libz.so.1"), "the tree's").unwrap();
        let mut note = ImageNote::default();
        note.owners.insert(format!("{lib}/libz.so.1"), crate::engine::image::Owner::Recipe("zlib".into()));
        let before = note.owners.clone();
        let staged = staging.path().join(lib);
        fs::create_dir_all(staged.join("cmake/libpng")).unwrap();
        fs::write(staged.join("cmake/libpng/libpng16.cmake"), "").unwrap();
        fs::write(staged.join("libpng16.so.16"), "").unwrap();
        std::os::unix::fs::symlink("libpng16.so.16", staged.join("libpng16.so")).unwrap();
        let moved = move_into_tree(staging.path(), tree.path(), &mut note, |_| crate::engine::image::Owner::Recipe("libpng".into())).unwrap();
        assert_eq!(moved.files.len(), 3);
        assert_eq!(moved.dirs, [tree.path().join(lib).join("cmake"), tree.path().join(lib).join("cmake/libpng")], "only the directories it made");
        assert_eq!(note.owners.get(&format!("{lib}/libpng16.so")).map(|o| o.to_string()).as_deref(), Some("recipe:libpng"));
        let added = AddedRecipes { recipes: vec!["libpng".into()], moved };
        added.take_out(tree.path(), &mut note).unwrap();
        let left: Vec<String> =
            WalkDir::new(tree.path()).min_depth(1).into_iter().flatten().map(|e| e.path().strip_prefix(tree.path()).unwrap().display().to_string()).collect();
        assert_eq!(left, ["usr", "usr/local", "usr/local/lib", "usr/local/lib/libz.so.1"]);
        assert_eq!(note.owners, before);
    }
}
