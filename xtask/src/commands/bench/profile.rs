//! `bench --only profile`: where the time goes, counted rather than timed.
//!
//! Each runtime case runs once per interpreter under the same qemu-user with
//! a TCG plugin (`tests/bench/insn_profile.c`) that counts the guest
//! instructions and translated blocks executed, per block address. The
//! counts do not depend on the host's load, so two interpreters compare on a
//! busy machine; the blocks matter as much as the instructions, because
//! under emulation every block executed costs a dispatch (a taken branch
//! between blocks, an indirect jump a lookup). Block addresses are named by
//! the interpreter's ELF symbols: ours are read from the tree (the package
//! strips them); Debian's stripped python3.X names only its exported ones.
//! A position-independent program (Debian's gcc links PIE) is named through
//! where qemu loaded it, which the plugin reports; blocks in shared objects
//! and the loader through the files qemu had mapped (the plugin's `map`
//! lines), by each file's symbols (ours from the tree, the board's own
//! stripped ones by what they export).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSegment, ObjectSymbol};
use serde_json::{json, Value};

use super::debian::Debian;
use super::plan::Options;
use super::runtime::{cases, interpreters};
use crate::engine::project::Project;
use crate::model::manifest::Loaded;

/// Functions listed per case and interpreter in the JSON; the table shows three.
const HOTTEST: usize = 12;

pub(super) fn profile(project: &Project, loaded: &Loaded, o: &Options, debian: &Debian) -> Result<(Value, String)> {
    let arch = &loaded.manifest.arch[&o.arch];
    let plugin = build_plugin(project, &arch.qemu)?;
    let lineup = interpreters(project, loaded, o, debian)?;
    let interps = &lineup.interps;
    let yardstick = interps.len() - 1;
    let mut namers: Vec<Namer> = interps.iter().map(Namer::new).collect::<Result<_>>()?;
    let scratch = tempfile::tempdir()?;
    let mut t = format!(
        "\nprofile ({} under {} with a counting plugin; guest instructions / translated blocks executed, millions, one run each:\n\
         \x20        counts, so the host's load does not move them; ratio = ours / {}; {})\n  {:26}",
        o.arch, arch.qemu, interps[yardstick].name, lineup.ours, ""
    );
    for i in interps {
        write!(t, " {:>17}", i.name)?;
    }
    for i in &interps[..yardstick] {
        write!(t, " {:>15}", format!("ratio {}", i.name))?;
    }
    let hot = yardstick - 1;
    writeln!(t, "   hottest functions of {}", interps[hot].name)?;
    let mut v = BTreeMap::new();
    for case in &cases(project) {
        let mut counts = vec![];
        for (k, i) in interps.iter().enumerate() {
            let out = scratch.path().join(format!("{k}.txt"));
            let mut cmd = i.command(arch, &case.args);
            cmd.env("QEMU_PLUGIN", format!("file={},out={}", plugin.display(), out.display()));
            // A fixed string hash, so that a count repeats run to run (with
            // random seeds sets and dicts iterate in another order each time).
            cmd.env("PYTHONHASHSEED", "0");
            crate::base::process::checked(&mut cmd).with_context(|| format!("{} {} under the counting plugin", i.name, case.args.join(" ")))?;
            let text = fs::read_to_string(&out).with_context(|| format!("the plugin wrote no counts for {} ({})", i.name, out.display()))?;
            counts.push(Counts::parse(&text).with_context(|| format!("counts of {} in {}", i.name, out.display()))?);
        }
        write!(t, "  {:26}", case.name)?;
        for c in &counts {
            write!(t, " {:>17}", format!("{:.1} / {:.1}", c.insns as f64 / 1e6, c.blocks as f64 / 1e6))?;
        }
        let y = &counts[yardstick];
        let mut case_v = serde_json::Map::new();
        for (k, c) in counts.iter().enumerate() {
            let ratio = (k != yardstick).then(|| (c.insns as f64 / y.insns as f64, c.blocks as f64 / y.blocks as f64));
            if let Some((ri, rb)) = ratio {
                write!(t, " {:>15}", format!("{ri:.2} / {rb:.2}"))?;
            }
            let functions = namers[k].hottest(c, HOTTEST);
            case_v.insert(
                interps[k].name.clone(),
                json!({
                    "instructions": c.insns,
                    "blocks": c.blocks,
                    "ratio": ratio.map(|(i, b)| json!({"instructions": i, "blocks": b})),
                    "hottest": functions
                        .iter()
                        .map(|(f, e)| json!({"function": f, "instructions": e.insns, "blocks": e.blocks, "share": e.insns as f64 / c.insns as f64}))
                        .collect::<Vec<_>>(),
                }),
            );
        }
        let shares: Vec<String> =
            namers[hot].hottest(&counts[hot], 3).iter().map(|(f, e)| format!("{f} {:.0}%", 100.0 * e.insns as f64 / counts[hot].insns as f64)).collect();
        writeln!(t, "   {}", shares.join(", "))?;
        v.insert(case.name.clone(), Value::Object(case_v));
    }
    let names: Vec<&str> = interps.iter().map(|i| i.name.as_str()).collect();
    Ok((json!({"interpreters": names, "ours": lineup.ours, "yardstick": interps[yardstick].name, "qemu": arch.qemu, "cases": v}), t))
}

/// The plugin, built once per source with the host's C compiler into the
/// bench cache. qemu must have been built with plugin support.
fn build_plugin(project: &Project, qemu: &str) -> Result<PathBuf> {
    let help = crate::base::process::output(std::process::Command::new(qemu).arg("-h")).with_context(|| format!("running `{qemu} -h`"))?;
    if !String::from_utf8_lossy(&help.stdout).contains("-plugin") {
        bail!("{qemu} was built without TCG plugins (no -plugin in `{qemu} -h`); bench --only profile counts with one");
    }
    let source = project.root.join("tests/bench/insn_profile.c");
    let text = fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let dir = project.dl_dir.parent().unwrap_or(&project.dl_dir).join("bench");
    let so = dir.join(format!("insn_profile-{}.so", &crate::sources::fetch::sha256_bytes(&text)[..16]));
    if so.exists() {
        return Ok(so);
    }
    fs::create_dir_all(&dir)?;
    let host = crate::machine::build_sys::rust_target();
    let tool = cc::Build::new().target(&host).host(&host).opt_level(2).cargo_metadata(false).cargo_warnings(false).try_get_compiler()?;
    let partial = so.with_extension("so.partial");
    let mut cmd = tool.to_command();
    cmd.args(["-shared", "-fPIC", "-fvisibility=hidden", "-o"]).arg(&partial).arg(&source).arg("-lpthread");
    crate::base::process::checked(&mut cmd).with_context(|| format!("compiling {}", source.display()))?;
    fs::rename(&partial, &so)?;
    Ok(so)
}

/// What the plugin wrote: totals, where the program's code was loaded, the
/// files mapped into the guest, then per block address the instructions
/// executed there and the times the block was entered.
#[derive(Debug, PartialEq)]
struct Counts {
    insns: u64,
    blocks: u64,
    /// qemu's `start_code`: the loaded address of the program's lowest
    /// executable segment (0: qemu did not say).
    start_code: u64,
    maps: Vec<Mapping>,
    by_block: Vec<(u64, Executed)>,
}

/// Guest addresses `start..end` hold `path` from byte `offset` on.
#[derive(Debug, PartialEq)]
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    path: PathBuf,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Executed {
    insns: u64,
    blocks: u64,
}

impl Counts {
    fn parse(text: &str) -> Result<Counts> {
        let mut lines = text.lines();
        let total = lines.next().context("empty")?;
        let [insns, blocks] = match total.split_whitespace().collect::<Vec<_>>()[..] {
            ["total", i, b] => [i.parse()?, b.parse()?],
            _ => bail!("the first line is not `total <instructions> <blocks>`: {total:?}"),
        };
        let code = lines.next().unwrap_or_default();
        let start_code = match code.split_once(' ') {
            Some(("start_code", a)) => u64::from_str_radix(a, 16).with_context(|| format!("start_code {a:?}"))?,
            _ => bail!("the second line is not `start_code <hex address>`: {code:?}"),
        };
        let hex = |a: &str| u64::from_str_radix(a, 16).with_context(|| format!("not a hex address: {a:?}"));
        let (mut maps, mut by_block) = (vec![], vec![]);
        for l in lines {
            if let Some(m) = l.strip_prefix("map ") {
                let [start, end, offset, path] = m.splitn(4, ' ').collect::<Vec<_>>()[..] else { bail!("not `map <start> <end> <offset> <path>`: {l:?}") };
                maps.push(Mapping { start: hex(start)?, end: hex(end)?, offset: hex(offset)?, path: path.into() });
                continue;
            }
            let [a, i, b] = l.split(' ').collect::<Vec<_>>()[..] else { bail!("not `<address> <instructions> <entered>`: {l:?}") };
            by_block.push((hex(a)?, Executed { insns: i.parse()?, blocks: b.parse()? }));
        }
        Ok(Counts { insns, blocks, start_code, maps, by_block })
    }
}

/// Function symbols of an executable, by the file's addresses, and the
/// file's address range.
struct Symbols {
    functions: Vec<(u64, u64, String)>,
    /// The loaded segments' span, as the file gives it.
    span: (u64, u64),
    /// The file's address of its lowest executable segment: what qemu's
    /// `start_code` is, less the load bias.
    code: u64,
    /// `ET_DYN`: loaded at an address of qemu's choosing.
    position_independent: bool,
    stripped: bool,
    /// The loaded segments as (file offset, address, size in the file):
    /// a mapping names a file offset, the symbols an address.
    segments: Vec<(u64, u64, u64)>,
}

impl Symbols {
    fn read(program: &Path) -> Result<Symbols> {
        let path = fs::canonicalize(program).with_context(|| format!("resolving {}", program.display()))?;
        let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let file = object::File::parse(&*data).with_context(|| format!("{} is not an ELF file", path.display()))?;
        let stripped = file.symbols().next().is_none();
        let table: Vec<_> = if stripped { file.dynamic_symbols().collect() } else { file.symbols().collect() };
        let mut functions: Vec<(u64, u64, String)> = table
            .iter()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 0)
            .filter_map(|s| Some((s.address(), s.address() + s.size(), plain_name(s.name().ok()?).to_string())))
            .collect();
        functions.sort();
        let span = file.segments().map(|s| (s.address(), s.address() + s.size())).fold((u64::MAX, 0), |(lo, hi), (a, b)| (lo.min(a), hi.max(b)));
        let executable = |s: &object::Segment| matches!(s.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & object::elf::PF_X != 0);
        let code = file.segments().filter(executable).map(|s| s.address()).min().unwrap_or(span.0);
        let position_independent = matches!(file.kind(), object::ObjectKind::Dynamic);
        let segments = file.segments().map(|s| (s.file_range().0, s.address(), s.file_range().1)).collect();
        Ok(Symbols { functions, span, code, position_independent, stripped, segments })
    }

    /// The file's address of a block qemu ran at `address`, given where qemu
    /// loaded the program's code; `None`: a position-independent program
    /// whose load address qemu did not say.
    fn file_address(&self, address: u64, start_code: u64) -> Option<u64> {
        match (self.position_independent, start_code) {
            (false, _) => Some(address),
            (true, 0) => None,
            (true, loaded) => Some(address.wrapping_sub(loaded.wrapping_sub(self.code))),
        }
    }

    /// The function holding the file's address `address`.
    fn function(&self, address: u64) -> Option<&str> {
        let k = self.functions.partition_point(|f| f.0 <= address);
        k.checked_sub(1).map(|k| &self.functions[k]).filter(|f| address < f.1).map(|f| f.2.as_str())
    }

    /// The program's name for a block, `None` outside the program.
    fn name(&self, address: u64, start_code: u64) -> Option<&str> {
        let Some(address) = self.file_address(address, start_code) else { return Some("(position-independent program: load address unknown)") };
        match self.function(address) {
            Some(name) => Some(name),
            // qemu reserves the program's whole span when it loads it, so
            // nothing else lies inside it.
            None if (self.span.0..self.span.1).contains(&address) => Some(if self.stripped { "(unnamed: stripped)" } else { "(no symbol)" }),
            None => None,
        }
    }

    /// The file's address of byte `offset` of the file, where a segment loads it.
    fn address_of_offset(&self, offset: u64) -> Option<u64> {
        self.segments.iter().find(|&&(o, _, size)| (o..o + size).contains(&offset)).map(|&(o, address, _)| address + (offset - o))
    }
}

/// Names the blocks of one interpreter's runs: the program by its own
/// symbols, blocks in other files (shared objects, the loader) by the
/// symbols of the file qemu had mapped there, read once per file.
struct Namer {
    program: Symbols,
    root: PathBuf,
    unstripped: Option<PathBuf>,
    /// By the mapped path: its symbols (`None`: not an ELF file).
    files: BTreeMap<PathBuf, Option<Symbols>>,
}

impl Namer {
    fn new(i: &super::runtime::Interp) -> Result<Namer> {
        Ok(Namer { program: Symbols::read(&i.symbols)?, root: i.root.clone(), unstripped: i.unstripped.clone(), files: BTreeMap::new() })
    }

    /// `memcpy (libc.so.6)`; `(libc.so.6)` where the file names nothing there.
    fn name(&mut self, address: u64, counts: &Counts) -> String {
        if let Some(name) = self.program.name(address, counts.start_code) {
            return name.to_string();
        }
        let Some(m) = counts.maps.iter().find(|m| (m.start..m.end).contains(&address)) else { return "(no file: generated code or vdso)".into() };
        let file = m.path.file_name().map_or_else(|| m.path.display().to_string(), |f| f.to_string_lossy().into_owned());
        let (root, unstripped) = (&self.root, &self.unstripped);
        let symbols = self.files.entry(m.path.clone()).or_insert_with(|| {
            // Ours are stripped in the package: the tree has the same file with symbols.
            let with_symbols = match (m.path.strip_prefix(root), unstripped) {
                (Ok(rel), Some(tree)) if tree.join(rel).is_file() => tree.join(rel),
                _ => m.path.clone(),
            };
            Symbols::read(&with_symbols).ok()
        });
        let function = symbols.as_ref().and_then(|s| s.function(s.address_of_offset(address - m.start + m.offset)?));
        match function {
            Some(f) => format!("{f} ({file})"),
            None => format!("({file})"),
        }
    }

    /// The functions that executed the most instructions, most first.
    fn hottest(&mut self, counts: &Counts, n: usize) -> Vec<(String, Executed)> {
        let mut by_function: BTreeMap<String, Executed> = BTreeMap::new();
        for (a, e) in &counts.by_block {
            let f = by_function.entry(self.name(*a, counts)).or_default();
            f.insns += e.insns;
            f.blocks += e.blocks;
        }
        let mut v: Vec<(String, Executed)> = by_function.into_iter().collect();
        v.sort_by(|a, b| b.1.insns.cmp(&a.1.insns).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// `k_mul` for LTO's promoted locals: clang's `k_mul.llvm.1355...`, gcc's
/// `k_mul.lto_priv.0`.
fn plain_name(name: &str) -> &str {
    [".llvm.", ".lto_priv."].iter().fold(name, |n, suffix| n.split_once(suffix).map_or(n, |(n, _)| n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_totals_then_where_the_code_was_loaded_then_mapped_files_and_blocks() {
        let c = Counts::parse("total 30 4\nstart_code 400000\nmap 3f750000 3f90e000 1000 /board/lib/libc.so 6\n400000 10 2\n400010 20 2\n").unwrap();
        let e = |insns, blocks| Executed { insns, blocks };
        let libc = Mapping { start: 0x3f75_0000, end: 0x3f90_e000, offset: 0x1000, path: "/board/lib/libc.so 6".into() };
        assert_eq!(c, Counts { insns: 30, blocks: 4, start_code: 0x400000, maps: vec![libc], by_block: vec![(0x400000, e(10, 2)), (0x400010, e(20, 2))] });
        assert!(Counts::parse("").is_err());
        assert!(Counts::parse("totals 1\n").is_err());
        assert!(Counts::parse("total 1 1\n400000 1 1\n").is_err(), "the load address comes second");
        assert!(Counts::parse("total 1 1\nstart_code 0\nzz 1 1\n").is_err());
        assert!(Counts::parse("total 1 1\nstart_code 0\n400000 1\n").is_err(), "a block line has three fields");
        assert!(Counts::parse("total 1 1\nstart_code 0\nmap 0 1000 /lib/libc.so\n").is_err(), "a map line has an offset");
    }

    fn counts(start_code: u64, by_block: &[(u64, u64, u64)]) -> Counts {
        let by_block: Vec<_> = by_block.iter().map(|&(a, insns, blocks)| (a, Executed { insns, blocks })).collect();
        Counts { insns: by_block.iter().map(|b| b.1.insns).sum(), blocks: by_block.iter().map(|b| b.1.blocks).sum(), start_code, maps: vec![], by_block }
    }

    /// Two functions in a program whose code starts at file address 0x1000.
    fn program(position_independent: bool, stripped: bool) -> Symbols {
        Symbols {
            functions: vec![(0x1000, 0x1100, "sre_ucs1_match".into()), (0x1200, 0x1300, "k_mul".into())],
            span: (0x0, 0x2000),
            code: 0x1000,
            position_independent,
            stripped,
            segments: vec![(0, 0, 0x2000)],
        }
    }

    fn namer(program: Symbols) -> Namer {
        Namer { program, root: "/board".into(), unstripped: None, files: BTreeMap::new() }
    }

    #[test]
    fn blocks_are_named_by_the_function_holding_them() {
        let s = program(false, false);
        assert_eq!(s.name(0x1000, 0x1000), Some("sre_ucs1_match"));
        assert_eq!(s.name(0x10ff, 0x1000), Some("sre_ucs1_match"));
        assert_eq!(s.name(0x1150, 0x1000), Some("(no symbol)"), "between two functions");
        assert_eq!(s.name(0x7f00_0000_0000, 0x1000), None, "outside the program");
        let e = |insns, blocks| Executed { insns, blocks };
        let hot = namer(s).hottest(&counts(0x1000, &[(0x1000, 5, 1), (0x1010, 5, 1), (0x1200, 7, 3), (0x9000_0000, 1, 1)]), 3);
        assert_eq!(hot, [("sre_ucs1_match".to_string(), e(10, 2)), ("k_mul".to_string(), e(7, 3)), ("(no file: generated code or vdso)".to_string(), e(1, 1))]);
    }

    #[test]
    fn a_position_independent_program_is_named_where_qemu_loaded_it() {
        let s = program(true, true);
        // qemu put the code (file address 0x1000) at 0x7f55_1000: the bias is 0x7f55_0000.
        assert_eq!(s.name(0x7f55_1010, 0x7f55_1000), Some("sre_ucs1_match"));
        assert_eq!(s.name(0x7f55_1800, 0x7f55_1000), Some("(unnamed: stripped)"));
        assert_eq!(s.name(0x1010, 0x7f55_1000), None, "a file address is not where it ran");
        assert_eq!(s.name(0x7f55_1010, 0), Some("(position-independent program: load address unknown)"));
    }

    #[test]
    fn a_block_in_a_shared_object_is_named_by_that_file_at_the_mapped_offset() {
        // libc's text: file offset 0x1000 holds address 0x11000 (a segment
        // whose address is not its offset), mapped by qemu at 0x3f75_0000.
        let libc = Symbols {
            functions: vec![(0x11200, 0x11300, "memcpy".into())],
            span: (0x10000, 0x20000),
            code: 0x11000,
            position_independent: true,
            stripped: true,
            segments: vec![(0, 0x10000, 0x1000), (0x1000, 0x11000, 0x8000)],
        };
        let mut n = namer(program(false, false));
        n.files.insert("/board/lib/libc.so.6".into(), Some(libc));
        n.files.insert("/board/usr/lib/locale/C.utf8/LC_CTYPE".into(), None);
        let mut c = counts(0x1000, &[]);
        c.maps = vec![
            Mapping { start: 0x3f75_0000, end: 0x3f76_0000, offset: 0x1000, path: "/board/lib/libc.so.6".into() },
            Mapping { start: 0x3f80_0000, end: 0x3f81_0000, offset: 0, path: "/board/usr/lib/locale/C.utf8/LC_CTYPE".into() },
        ];
        assert_eq!(n.name(0x3f75_0210, &c), "memcpy (libc.so.6)");
        assert_eq!(n.name(0x3f75_0400, &c), "(libc.so.6)", "no symbol there");
        assert_eq!(n.name(0x3f80_0010, &c), "(LC_CTYPE)", "not an ELF file");
        assert_eq!(n.name(0x1200, &c), "k_mul", "the program comes first");
    }

    #[test]
    fn lto_suffixes_are_dropped_from_names() {
        assert_eq!(plain_name("k_mul.llvm.13558651665022624622"), "k_mul");
        assert_eq!(plain_name("sre_ucs1_match.lto_priv.0"), "sre_ucs1_match");
        assert_eq!(plain_name("Py_UNICODE_ISALNUM.lto_priv.1.lto_priv.0"), "Py_UNICODE_ISALNUM");
        assert_eq!(plain_name("x_divrem"), "x_divrem");
    }
}
