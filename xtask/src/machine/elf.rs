//! What an ELF file says about itself (machine, class, endianness, needed
//! libraries, interpreter, run paths, glibc symbol versions, stack and
//! RELRO), read with the `object` crate, and the checks a target tree
//! must pass.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};
use object::Endianness;

use crate::model::manifest::{ElfExpect, ElfMachine, Endian};

#[derive(Debug, Clone, Default)]
pub struct ElfInfo {
    pub machine: u16,
    pub bits: u8,
    pub little_endian: bool,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub interp: Option<String>,
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    /// Highest `GLIBC_x.y` version the file needs, as (x, y).
    pub max_glibc: Option<(u32, u32)>,
    pub exec_stack: bool,
    pub relro: bool,
    /// Packed relative relocations (`DT_RELR`): loaders before glibc 2.36
    /// and musl 1.2.4 ignore them, and the file crashes when loaded.
    pub relr: bool,
    /// What the loader maps: each `PT_LOAD` as (vaddr, memsz, filesz, flags).
    pub loads: Vec<(u64, u64, u64, u32)>,
    /// An executable loaded at the addresses it names (ET_EXEC), not one
    /// the loader places (a library or a PIE program, ET_DYN).
    pub fixed_address: bool,
}

/// `DT_RELR` (gABI; not in `object`'s constants yet).
const DT_RELR: u32 = 36;

/// Every ELF file below `root`, with what it says.
pub fn elf_files(root: &Path) -> Result<Vec<(PathBuf, ElfInfo)>> {
    let mut out = vec![];
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e?;
        if e.file_type().is_file() {
            if let Some(info) = inspect(e.path())? {
                out.push((e.path().to_path_buf(), info));
            }
        }
    }
    Ok(out)
}

/// Edit an ELF file with patchelf (run paths, interpreter).
pub fn patchelf(path: &Path, args: &[&str]) -> Result<()> {
    crate::base::process::checked(std::process::Command::new("patchelf").args(args).arg(path))
        .with_context(|| format!("patchelf {} {} (Debian package patchelf)", args.join(" "), path.display()))?;
    Ok(())
}

/// Empty the debug sections of an ELF file in place: their bytes zeroed
/// and their type made `SHT_NOBITS`, so that readers see none. Nothing
/// moves: for files a strip would remap (patchelf's appended segment, see
/// `package`), this is how their debug information, and the build
/// directories it names (`DW_AT_comp_dir`), stay out of a package.
/// Returns how many sections were emptied.
pub fn blank_debug_sections(path: &Path) -> Result<usize> {
    let Some((mut data, ranges)) = read_by_class(path, debug_sections::<elf::FileHeader32<Endianness>>, debug_sections::<elf::FileHeader64<Endianness>>)?
    else {
        return Ok(0);
    };
    let nobits = if data[5] == elf::ELFDATA2MSB { elf::SHT_NOBITS.to_be_bytes() } else { elf::SHT_NOBITS.to_le_bytes() };
    for (header, contents) in &ranges {
        // sh_type is the second word of a section header in both classes.
        data[header + 4..header + 8].copy_from_slice(&nobits);
        data[contents.clone()].fill(0);
    }
    if !ranges.is_empty() {
        std::fs::write(path, &data).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ranges.len())
}

/// Zero the bytes of an ELF file that no header, section or segment
/// covers: what a tool that lays the sections out anew leaves behind of
/// their old place (debugedit's libelf moves the debug sections of a file
/// patchelf rewrote, and the old `.debug_str` stays in the gap, build
/// paths and all). Nothing reads them; returns how many were not zero.
pub fn blank_uncovered_bytes(path: &Path) -> Result<usize> {
    let Some((mut data, covered)) = read_by_class(path, covered_ranges::<elf::FileHeader32<Endianness>>, covered_ranges::<elf::FileHeader64<Endianness>>)?
    else {
        return Ok(0);
    };
    let mut is_covered = vec![false; data.len()];
    for r in covered {
        is_covered[r.start.min(data.len())..r.end.min(data.len())].fill(true);
    }
    let mut blanked = 0;
    for (byte, covered) in data.iter_mut().zip(&is_covered) {
        if !covered && *byte != 0 {
            *byte = 0;
            blanked += 1;
        }
    }
    if blanked > 0 {
        std::fs::write(path, &data).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(blanked)
}

/// The file ranges of the ELF header, the program and section header
/// tables, every section with contents and every segment.
fn covered_ranges<E: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Vec<std::ops::Range<usize>>> {
    let header = E::parse(data)?;
    let endian = header.endian()?;
    let mut out = Vec::new();
    out.push(0..header.e_ehsize(endian) as usize);
    let (phoff, phsize) = (header.e_phoff(endian).into() as usize, header.e_phentsize(endian) as usize * header.phnum(endian, data)?);
    out.push(phoff..phoff + phsize);
    let (shoff, shsize) = (header.e_shoff(endian).into() as usize, header.e_shentsize(endian) as usize * header.shnum(endian, data)?);
    out.push(shoff..shoff + shsize);
    for s in header.sections(endian, data)?.iter() {
        if s.sh_type(endian) != elf::SHT_NOBITS {
            let start = s.sh_offset(endian).into() as usize;
            out.push(start..start.saturating_add(s.sh_size(endian).into() as usize));
        }
    }
    for p in header.program_headers(endian, data)? {
        let start = p.p_offset(endian).into() as usize;
        out.push(start..start.saturating_add(p.p_filesz(endian).into() as usize));
    }
    Ok(out)
}

/// The `.debug_*` sections with contents: where each one's header is, and
/// the bytes it holds.
fn debug_sections<E: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Vec<(usize, std::ops::Range<usize>)>> {
    let header = E::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let (shoff, shentsize) = (header.e_shoff(endian).into() as usize, header.e_shentsize(endian) as usize);
    let mut out = vec![];
    for (i, s) in sections.iter().enumerate() {
        let name = sections.section_name(endian, s).unwrap_or_default();
        if name.starts_with(b".debug") && s.sh_type(endian) != elf::SHT_NOBITS {
            let (start, size) = (s.sh_offset(endian).into() as usize, s.sh_size(endian).into() as usize);
            if start.checked_add(size).is_some_and(|end| end <= data.len()) {
                out.push((shoff + i * shentsize, start..start + size));
            }
        }
    }
    Ok(out)
}

/// `None` when the file is not ELF.
pub fn inspect(path: &Path) -> Result<Option<ElfInfo>> {
    Ok(read_by_class(path, parse::<elf::FileHeader32<Endianness>>, parse::<elf::FileHeader64<Endianness>>)?.map(|(_, info)| info))
}

/// The bytes of the ELF file at `path` and what `class32` or `class64`,
/// as its class is, reads of them; `None` when it is no ELF file.
fn read_by_class<T>(path: &Path, class32: fn(&[u8]) -> Result<T>, class64: fn(&[u8]) -> Result<T>) -> Result<Option<(Vec<u8>, T)>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if data.len() < 16 || &data[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let read = match data[4] {
        elf::ELFCLASS32 => class32(&data),
        elf::ELFCLASS64 => class64(&data),
        c => bail!("{}: unknown ELF class {c}", path.display()),
    }
    .with_context(|| format!("cannot parse the ELF file {}", path.display()))?;
    Ok(Some((data, read)))
}

fn parse<E: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<ElfInfo> {
    let header = E::parse(data)?;
    let endian = header.endian()?;
    let mut info = ElfInfo {
        machine: header.e_machine(endian),
        bits: if header.is_class_64() { 64 } else { 32 },
        little_endian: endian == Endianness::Little,
        fixed_address: header.e_type(endian) == elf::ET_EXEC,
        ..Default::default()
    };
    for ph in header.program_headers(endian, data)? {
        match ph.p_type(endian) {
            elf::PT_INTERP => {
                let bytes = ph.data(endian, data).map_err(|_| anyhow::anyhow!("bad PT_INTERP"))?;
                info.interp = Some(String::from_utf8_lossy(bytes).trim_end_matches('\0').to_string());
            }
            elf::PT_LOAD => {
                let n = |v: <E as FileHeader>::Word| -> u64 { v.into() };
                info.loads.push((n(ph.p_vaddr(endian)), n(ph.p_memsz(endian)), n(ph.p_filesz(endian)), ph.p_flags(endian)));
            }
            elf::PT_GNU_STACK => info.exec_stack = ph.p_flags(endian) & elf::PF_X != 0,
            elf::PT_GNU_RELRO => info.relro = true,
            _ => {}
        }
    }
    let sections = header.sections(endian, data)?;
    if let Some((dyns, link)) = sections.dynamic(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        for d in dyns {
            let Some(tag) = d.tag32(endian) else { continue };
            let text = || d.string(endian, strings).map(|s| String::from_utf8_lossy(s).into_owned());
            match tag {
                elf::DT_NEEDED => info.needed.push(text()?),
                elf::DT_SONAME => info.soname = Some(text()?),
                elf::DT_RPATH => info.rpath = Some(text()?),
                elf::DT_RUNPATH => info.runpath = Some(text()?),
                DT_RELR => info.relr = true,
                _ => {}
            }
        }
    }
    if let Some((mut verneed, link)) = sections.gnu_verneed(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        while let Some((_, mut aux)) = verneed.next()? {
            while let Some(a) = aux.next()? {
                let name = String::from_utf8_lossy(a.name(endian, strings)?).into_owned();
                if let Some(v) = glibc_version(&name) {
                    info.max_glibc = info.max_glibc.max(Some(v));
                }
            }
        }
    }
    Ok(info)
}

/// The highest `GLIBC_x.y` version a library defines (its `.gnu.version_d`):
/// for a toolchain's `libc.so.6`, the glibc the board must have at least.
pub fn glibc_defined(path: &Path) -> Result<Option<(u32, u32)>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    fn defined<E: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Option<(u32, u32)>> {
        let header = E::parse(data)?;
        let endian = header.endian()?;
        let sections = header.sections(endian, data)?;
        let mut max = None;
        if let Some((mut verdef, link)) = sections.gnu_verdef(endian, data)? {
            let strings = sections.strings(endian, data, link)?;
            while let Some((_, mut aux)) = verdef.next()? {
                if let Some(a) = aux.next()? {
                    max = max.max(glibc_version(&String::from_utf8_lossy(a.name(endian, strings)?)));
                }
            }
        }
        Ok(max)
    }
    match data.get(4) {
        Some(&elf::ELFCLASS32) => defined::<elf::FileHeader32<Endianness>>(&data),
        Some(&elf::ELFCLASS64) => defined::<elf::FileHeader64<Endianness>>(&data),
        _ => bail!("{} is not an ELF file", path.display()),
    }
}

/// The dynamic symbols of an ELF file: what it defines, and what it needs
/// from others (undefined and not weak, so the loader must find it).
#[derive(Debug, Default)]
pub struct DynamicSymbols {
    pub defined: std::collections::BTreeSet<String>,
    pub needed: std::collections::BTreeSet<String>,
}

pub fn dynamic_symbols(path: &Path) -> Result<DynamicSymbols> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*data).with_context(|| format!("cannot parse the ELF file {}", path.display()))?;
    let mips = (file.architecture() == object::Architecture::Mips).then(|| mips_lookups(&file)).flatten();
    let mut out = DynamicSymbols::default();
    for sym in file.dynamic_symbols() {
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() {
            continue;
        }
        if sym.is_undefined() {
            let looked_up = mips.as_ref().is_none_or(|m| m.looks_up(sym.index().0));
            if !sym.is_weak() && looked_up {
                out.needed.insert(name.to_string());
            }
        } else {
            out.defined.insert(name.to_string());
        }
    }
    Ok(out)
}

/// Which dynamic symbols the MIPS loader looks up: those of the global GOT
/// (from `DT_MIPS_GOTSYM` on) and those a dynamic relocation names (glibc's
/// sysdeps/mips/dl-machine.h). GNU ld leaves `__gnu_local_gp`, the `_gp`
/// it defines for non-PIC code, undefined in an executable's `.dynsym`
/// below `GOTSYM` (Debian's python3.11 on mipsel has it too): never looked up.
struct MipsLookups {
    gotsym: usize,
    relocated: std::collections::BTreeSet<usize>,
}

impl MipsLookups {
    fn looks_up(&self, index: usize) -> bool {
        index >= self.gotsym || self.relocated.contains(&index)
    }
}

fn mips_lookups(file: &object::File) -> Option<MipsLookups> {
    use object::Object;
    fn gotsym<E: FileHeader<Endian = Endianness>>(f: &object::read::elf::ElfFile<E>) -> Option<u64> {
        let (dyns, _) = f.elf_section_table().dynamic(f.endian(), f.data()).ok()??;
        dyns.iter().find(|d| d.tag32(f.endian()) == Some(elf::DT_MIPS_GOTSYM)).map(|d| d.d_val(f.endian()).into())
    }
    let gotsym = match file {
        object::File::Elf32(f) => gotsym(f),
        object::File::Elf64(f) => gotsym(f),
        _ => None,
    }?;
    let relocated = file
        .dynamic_relocations()
        .into_iter()
        .flatten()
        .filter_map(|(_, r)| match r.target() {
            object::RelocationTarget::Symbol(i) => Some(i.0),
            _ => None,
        })
        .collect();
    Some(MipsLookups { gotsym: usize::try_from(gotsym).ok()?, relocated })
}

/// `GLIBC_2.34` -> (2, 34)
pub fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let v = name.strip_prefix("GLIBC_")?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().unwrap_or("0").parse().ok()?;
    Some((major, minor))
}

/// The ELF machine number of an arch entry's `elf.machine`.
pub fn machine_number(m: ElfMachine) -> u16 {
    match m {
        ElfMachine::Aarch64 => elf::EM_AARCH64,
        ElfMachine::Arm => elf::EM_ARM,
        ElfMachine::Mips => elf::EM_MIPS,
        ElfMachine::Riscv => elf::EM_RISCV,
        ElfMachine::X86_64 => elf::EM_X86_64,
        ElfMachine::I386 => elf::EM_386,
        ElfMachine::Ppc64 => elf::EM_PPC64,
        ElfMachine::Ppc => elf::EM_PPC,
        ElfMachine::S390 => elf::EM_S390,
        ElfMachine::Loongarch => elf::EM_LOONGARCH,
    }
}

/// Is the file built for the arch: machine, class and endianness?
pub fn check_machine(info: &ElfInfo, want: &ElfExpect) -> Result<(), String> {
    let machine = machine_number(want.machine);
    let little = want.endian == Endian::Little;
    let mut wrong = vec![];
    if info.machine != machine {
        wrong.push(format!("machine {} (want {} = {machine})", info.machine, want.machine));
    }
    if info.bits != u8::from(want.bits) {
        wrong.push(format!("{}-bit (want {}-bit)", info.bits, want.bits));
    }
    if info.little_endian != little {
        wrong.push(format!("{} endian (want {})", if info.little_endian { "little" } else { "big" }, want.endian));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_no_header_section_or_segment_covers_are_zeroed_and_the_program_still_runs() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("x.c"), "int main(void) { return 7; }\n").unwrap();
        let prog = t.path().join("x");
        assert!(std::process::Command::new("gcc").args(["-g", "-o"]).arg(&prog).arg(t.path().join("x.c")).status().unwrap().success());
        let built = std::fs::read(&prog).unwrap();
        // What a relayout leaves past the last table: an old copy of a
        // string section, build path and all.
        let mut file = built.clone();
        file.extend_from_slice(b"/work/b/armhf/work/ncurses-6.4/build\0");
        std::fs::write(&prog, &file).unwrap();
        assert_eq!(blank_uncovered_bytes(&prog).unwrap(), "/work/b/armhf/work/ncurses-6.4/build".len());
        let after = std::fs::read(&prog).unwrap();
        assert_eq!(&after[..built.len()], &built[..], "every covered byte is kept");
        assert!(after[built.len()..].iter().all(|b| *b == 0));
        assert_eq!(std::process::Command::new(&prog).status().unwrap().code(), Some(7));
        assert_eq!(blank_uncovered_bytes(&prog).unwrap(), 0, "a second pass finds nothing");
    }

    #[test]
    fn glibc_versions_parse_and_order() {
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version("GLIBC_2.4"), Some((2, 4)));
        assert!(glibc_version("GLIBC_2.34") > glibc_version("GLIBC_2.4"));
        assert_eq!(glibc_version("GCC_3.0"), None);
    }

    #[test]
    fn the_test_binary_itself_is_read() {
        let me = std::env::current_exe().unwrap();
        let info = inspect(&me).unwrap().expect("the test binary is ELF");
        assert_eq!(info.bits, 64);
        assert!(info.needed.iter().any(|n| n.starts_with("libc.so")), "{:?}", info.needed);
        assert!(info.max_glibc.is_some());
        assert!(!info.exec_stack);
    }

    #[test]
    fn the_mips_loader_looks_up_the_global_got_and_relocated_symbols_only() {
        let m = MipsLookups { gotsym: 100, relocated: [7].into() };
        assert!(!m.looks_up(60), "below GOTSYM, no relocation: __gnu_local_gp of a non-PIC executable");
        assert!(m.looks_up(7), "a dynamic relocation names it");
        assert!(m.looks_up(100) && m.looks_up(250), "the global GOT");
    }

    #[test]
    fn a_text_file_is_not_elf() {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), "#!/bin/sh\n").unwrap();
        assert!(inspect(t.path()).unwrap().is_none());
    }
}
