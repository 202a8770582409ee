//! `--help` of both binaries never prints the value of `WEIR_REDIS_URL` (it may carry a
//! password), while still naming the variable.

use std::path::PathBuf;
use std::process::Command;

fn worker_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir-worker"))
}

/// The `weir` binary, next to `weir-worker` (`cargo build --workspace --bins` builds it).
fn weir_path() -> PathBuf {
    let path = worker_path().with_file_name(format!("weir{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins`",
        path.display()
    );
    path
}

#[test]
fn help_names_the_redis_variable_but_never_its_value() {
    for (binary, args) in [
        (worker_path(), vec!["--help"]),
        (weir_path(), vec!["--help"]),
        (weir_path(), vec!["coordinator", "--help"]),
    ] {
        let out = Command::new(&binary)
            .args(&args)
            .env(
                "WEIR_REDIS_URL",
                "redis://app:hunter2-secret@10.1.2.3:6379/0",
            )
            .output()
            .expect("the binary runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} {args:?}: {text}",
            binary.display()
        );
        assert!(text.contains("WEIR_REDIS_URL"), "{text}");
        assert!(
            !text.contains("hunter2"),
            "{} {args:?} prints the password: {text}",
            binary.display()
        );
    }
}
