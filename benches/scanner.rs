//! The scanner on a downloads folder of 10,000 files (U6): 3,333 builds, each
//! with its `.sha256` and `.channel`, plus one stray file.

use criterion::{Criterion, criterion_group, criterion_main};
use rmmsim::server::scanner::scan_dir;

fn folder(files: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    for i in 0..files / 3 {
        let os = if i % 2 == 0 { "windows" } else { "linux" };
        let name = format!(
            "gururmm-agent-{os}-amd64-{}.{}.{}.exe",
            i / 1000,
            (i / 10) % 100,
            i % 10 + i / 100
        );
        std::fs::write(dir.path().join(&name), b"build").unwrap();
        std::fs::write(dir.path().join(format!("{name}.sha256")), digest).unwrap();
        std::fs::write(
            dir.path().join(format!("{name}.channel")),
            if i % 3 == 0 { "beta" } else { "stable" },
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("README.txt"), b"stray").unwrap();
    dir
}

fn scanner(c: &mut Criterion) {
    let dir = folder(10_000);
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 10_000);
    c.bench_function("scan_dir/10k_files", |b| {
        b.iter(|| {
            let scan = scan_dir(dir.path()).unwrap();
            assert!(scan.builds.len() > 3000);
            scan
        })
    });
}

criterion_group!(benches, scanner);
criterion_main!(benches);
