use super::booted::guest_junit;
use super::record::{checks_record, Memory};
use super::*;

#[test]
fn the_booted_memory_figures_read_side_by_side_with_the_boards_python() {
    // As mipsel's runtime package measured them on malta (session 17).
    let detail = r#"{"/usr/bin/python3.11": {"rss_numpy_kib": null, "rss_pass_kib": 7492, "startup_isolated_ms": 800, "startup_ms": 1048}, "checks_vmhwm_kib": 45748, "mem_available_kib": 201064, "mem_total_kib": 244228, "python3": {"rss_numpy_kib": 19628, "rss_pass_kib": 8856, "startup_isolated_ms": 1487, "startup_ms": 2624}}"#;
    let text = Memory::parse(detail).unwrap().to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines[1], "python3 (ours)         peak RSS of -c pass 8.6 MiB, import numpy 19.2 MiB; startup -c pass 2624 ms, -I -S -c pass 1487 ms");
    assert_eq!(lines[2], "/usr/bin/python3.11    peak RSS of -c pass 7.3 MiB; startup -c pass 1048 ms, -I -S -c pass 800 ms");
    assert_eq!(lines[3], "ours / its: peak 1.18, startup 2.50 and 1.86");
    assert_eq!(lines[4], "the checks' peak RSS 44.7 MiB; 196.4 MiB of 238.5 MiB available after");
    // Under qemu-user the check measures nothing, and nothing is printed.
    assert!(Memory::parse("measured on a booted kernel only (qemu-test --system)").is_none());
}

#[test]
fn each_package_tested_keeps_its_own_checks_record_beside_the_trees() {
    assert_eq!(checks_record(None, false), "qemu-test-checks.json");
    assert_eq!(checks_record(None, true), "qemu-test-system-checks.json");
    let minimal = Path::new("/x/crosspython-3.14.7-aarch64-minimal.tar.zst");
    let runtime = Path::new("deploy/aarch64/crosspython-3.14.7-aarch64.tar.gz");
    assert_eq!(checks_record(Some(minimal), true), "crosspython-3.14.7-aarch64-minimal.qemu-test-system-checks.json");
    assert_eq!(checks_record(Some(runtime), false), "crosspython-3.14.7-aarch64.qemu-test-checks.json");
    // An archive of another name keeps it whole.
    assert_eq!(checks_record(Some(Path::new("board-image.tar.xz")), true), "board-image.tar.xz.qemu-test-system-checks.json");
}

#[test]
fn the_guests_junit_xml_comes_back_from_gzip_and_base64_or_says_what_broke() {
    use base64::Engine as _;
    let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"<testsuites/>").unwrap();
    let text = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    assert_eq!(guest_junit(&text).unwrap(), "<testsuites/>");
    assert_eq!(guest_junit("").unwrap_err().to_string(), "the guest printed no JUnit XML (regrtest wrote none)");
    assert_eq!(guest_junit("not base64!").unwrap_err().to_string(), "its base64 is broken");
    assert_eq!(guest_junit("aGVsbG8=").unwrap_err().to_string(), "its gzip is broken");
}
