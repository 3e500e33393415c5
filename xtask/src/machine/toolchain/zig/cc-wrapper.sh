#!/bin/sh
# crosspython: zig as a @TRIPLET@ toolchain for @BOARDS@ boards.
export ZIG_GLOBAL_CACHE_DIR='@CACHE@' ZIG_LOCAL_CACHE_DIR='@CACHE@'
## The template of zig's compiler wrappers (gcc, cc, g++, c++), rendered by
## `zig::wrappers`: `##` lines are the template's own and are left out; a
## line that is only `@NAME@` becomes that part's lines, or none.
##
## Queries take the target without the glibc version, which clang's own
## parser rejects; -dumpmachine answers with the GNU triplet, as configure
## scripts compare it with --host.
case "$1" in
  -dumpmachine) echo @TRIPLET@; exit 0;;
  --version|-v|-V|-qversion|-dumpversion|-print-*|--print-*) exec '@ZIG@' @DRIVER@ -target @PLAIN@ "$@";;
esac
## Arguments are rewritten in one pass (`set -f`: no globbing of split
## words): `-Wl,a,b,c` items zig refuses (the toolchain's
## `drop_linker_args`) are dropped, GNU ld's short `-hNAME` (CPython links
## libpython with it) becomes `-soname,NAME`, which zig's linker options
## parser knows, and an object file named `*.so` (readline compiles its PIC
## objects so) is passed under a `.o` name, since zig takes every `*.so`
## argument for a shared library. zig cannot link a shared library from
## shared libraries alone (CPython's libpython3.so stub): an empty object
## is added. zig reads no source from standard input (`echo MIPSEB | $CC -E
## -`, by which OpenSSL's MIPS assembler scripts tell the byte order): it
## is passed as a file.
set -f
tmp=
n=0
inputs=
@PROFILE_INIT@
shared=
lang=
link=1
for a in "$@"; do
  shift
  case "$a" in
    -c|-S|-E|-M|-MM) link=; set -- "$@" "$a";;
    -Wl,*)
      out=-Wl; IFS=,
      for w in ${a#-Wl,}; do
        case "$w" in
          @DROP@) ;;
          -h*=*) out="$out,$w";;
          -h?*) out="$out,-soname,${w#-h}";;
          *) out="$out,$w";;
        esac
      done
      unset IFS
      [ "$out" = -Wl ] || set -- "$@" "$out";;
    *.so)
      case "$(od -An -tx1 -j16 -N2 "$a" 2>/dev/null | tr -d ' \n')" in
        0100|0001)
          inputs=1
          [ -n "$tmp" ] || tmp=$(mktemp -d)
          n=$((n+1))
          ln -s "$(cd "$(dirname "$a")" && pwd)/$(basename "$a")" "$tmp/$n.o"
          set -- "$@" "$tmp/$n.o";;
        *) set -- "$@" "$a";;
      esac;;
## Arches whose assembly zig's integrated assembler cannot take
## (`zig_gnu_as`) hand it to GNU as.
@GNU_AS@
    *.c|*.cc|*.cpp|*.cxx|*.s|*.S|*.o|*.a|*.i|*.ii) inputs=1; set -- "$@" "$a";;
    -shared) shared=1; set -- "$@" "$a";;
## zig caches every compile by its arguments and the files the
## preprocessor reads, not by the profile a compile uses: a rebuild with a
## new profile at the same path got the objects of the old one (found with
## two profiles of one program). The profile's hash goes into the
## arguments, as a macro nothing reads.
@PROFILE_ARG@
    -x) lang=1; set -- "$@" "$a";;
    -)
      [ -n "$tmp" ] || tmp=$(mktemp -d)
      if [ -n "$lang" ]; then in="$tmp/stdin"; else in="$tmp/stdin.c"; fi
      cat > "$in"
      set -- "$@" "$in";;
    *) set -- "$@" "$a";;
  esac
done
if [ -n "$shared" ] && [ -z "$inputs" ]; then
  [ -n "$tmp" ] || tmp=$(mktemp -d)
  '@ZIG@' @DRIVER@ -target @TARGET@@CPU@ -c -x c /dev/null -o "$tmp/empty.o" || exit 1
  set -- "$@" "$tmp/empty.o"
fi
## Programs (not libraries) at the arch's `zig_image_base`, where lld's
## default is too low for what patchelf does to them afterwards.
@IMAGE_BASE@
## compiler-rt for the board's C library (see `compiler_rt_for_boards`) on
## every link line.
@COMPILER_RT@
## Instrumented builds only (the `bin-profile` set): clang's driver links
## its profile runtime into every program and library built with
## -fprofile-instr-generate and keeps it with `-u __llvm_profile_runtime`;
## zig links none (see `profile_runtime`). An instrumented build is never
## LTO (`-fno-lto` last wins over CPython's `-flto=thin`): clang's
## front-end instrumentation keys the profile by function and source, not
## by what LTO does afterwards, so the LTO build that uses it gets the same
## profile, and the throwaway instrumented build skips ThinLTO's link
## (2m40s of python3's PGO build on aarch64). Nor does it carry debug
## information (`-g0` last wins over `-g`): nothing debugs the throwaway
## build, and without it a compile takes a quarter less (ceval.c: 3.2 s
## against 2.4 s).
@PROFILE@
## zig turns on UBSan traps for unoptimized code: recipes decide about
## sanitizers. zig also makes __DATE__ an error (-Werror=date-time); clang
## takes it from SOURCE_DATE_EPOCH, which every task sets, so it is
## reproducible (CPython's getbuildinfo.c uses it).
[ -z "$tmp" ] && exec '@ZIG@' @DRIVER@ -target @TARGET@@CPU@ -fno-sanitize=all -Wno-error=date-time "$@"
'@ZIG@' @DRIVER@ -target @TARGET@@CPU@ -fno-sanitize=all -Wno-error=date-time "$@"
rc=$?
rm -rf "$tmp"
exit $rc
