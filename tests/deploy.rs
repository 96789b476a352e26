//! The deploy kit in `deploy/`: its JSON parses, every name a reader must set is documented,
//! the Stonebranch wrapper runs the real binary and passes its exit code through, and
//! `make dist` produces a binary that runs.
//!
//! `dist_binary_runs` runs `make dist`. Where a release build is already warm (after `make
//! build` or `make demo`) it builds the release profile, what the image ships; with
//! `CUSIP_TEST_DIST=1` (CI) it runs the same recipe with `DIST_PROFILE=dev`, which reuses the
//! build `cargo test` just made: the recipe, `--locked` and the artifact are checked without a
//! cold release build (~13 minutes on a 2-core runner). `CUSIP_TEST_DIST=release` forces the
//! release build. Otherwise it skips itself, saying so.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The runbook: docs/operations.md documents every file of the kit and every variable it sets.
fn operations_md() -> String {
    read(&root().join("docs/operations.md"))
}

/// The files of `deploy/`, by name, sorted.
fn deploy_files() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(deploy())
        .expect("deploy/ exists")
        .map(|e| e.expect("deploy/ entry"))
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn json_files() -> Vec<String> {
    deploy_files()
        .into_iter()
        .filter(|n| n.ends_with(".json"))
        .collect()
}

fn parse_json(name: &str) -> Value {
    let path = deploy().join(name);
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
}

/// `name` occurs in `text` as a whole word (not as the start of a longer variable name).
fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

/// Every complete `CUSIP_*` variable name in `text` (globs such as `CUSIP_S3_*` are skipped).
fn cusip_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("CUSIP_") {
        if text[..i].chars().next_back().is_some_and(is_name_char) {
            continue;
        }
        let name: String = text[i..].chars().take_while(|&c| is_name_char(c)).collect();
        if !name.ends_with('_') {
            out.insert(name);
        }
    }
    out
}

/// The `name`s of one container-definition list (`environment` or `secrets`).
fn container_names(task: &Value, list: &str) -> Vec<String> {
    task["containerDefinitions"]
        .as_array()
        .expect("containerDefinitions is an array")
        .iter()
        .flat_map(|c| c[list].as_array().cloned().unwrap_or_default())
        .map(|v| {
            v["name"]
                .as_str()
                .expect("every entry has a name")
                .to_string()
        })
        .collect()
}

/// A fresh empty directory under Cargo's per-target scratch space.
fn scratch(label: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "deploy-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn summary_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Runs `deploy/stonebranch-load.sh ARGS` with the test build of the loader.
fn stonebranch(args: &[&str], summary_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(deploy().join("stonebranch-load.sh"))
        .args(args)
        .env("CUSIP_LOADER", env!("CARGO_BIN_EXE_cusip-loader"))
        .env("TZ", "America/New_York")
        .env_remove("CUSIP_SUMMARY_DIR")
        .env_remove("CUSIP_FILE_SOURCE");
    if let Some(dir) = summary_dir {
        cmd.env("CUSIP_SUMMARY_DIR", dir);
    }
    cmd.output().expect("bash runs")
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn statuses(summary: &Value) -> Vec<String> {
    summary["files"]
        .as_array()
        .expect("summary has files")
        .iter()
        .map(|f| f["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn every_json_file_parses() {
    let files = json_files();
    assert!(
        files.len() >= 4,
        "expected the deploy kit's JSON files, found {files:?}"
    );
    for name in &files {
        parse_json(name);
    }
}

#[test]
fn every_deploy_file_is_named_in_operations_md() {
    let doc = operations_md();
    let files = deploy_files();
    for name in [
        "Dockerfile",
        "stonebranch-load.sh",
        "ecs-task-definition.json",
    ] {
        assert!(files.iter().any(|f| f == name), "deploy/{name} is missing");
    }
    let missing: Vec<&String> = files.iter().filter(|n| !doc.contains(n.as_str())).collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md never names {missing:?}"
    );
}

#[test]
fn every_cusip_variable_of_the_kit_is_documented() {
    // The README's Configuration table, or the runbook.
    let docs = format!("{}\n{}", read(&root().join("README.md")), operations_md());
    let task = parse_json("ecs-task-definition.json");
    let mut names: BTreeSet<String> = container_names(&task, "environment")
        .into_iter()
        .chain(container_names(&task, "secrets"))
        .filter(|n| n.starts_with("CUSIP_"))
        .collect();
    assert!(
        names.contains("CUSIP_FILE_SOURCE"),
        "the task definition sets no CUSIP_FILE_SOURCE: {names:?}"
    );
    // The rest of the kit (the image's ENV, the wrapper's own variables, the other JSON).
    for name in deploy_files() {
        names.extend(cusip_names(&read(&deploy().join(&name))));
    }
    let undocumented: Vec<&String> = names.iter().filter(|n| !mentions(&docs, n)).collect();
    assert!(
        undocumented.is_empty(),
        "named in deploy/ but documented nowhere in README.md or docs/operations.md: \
         {undocumented:?}"
    );
}

#[test]
fn task_definition_is_a_batch_job_with_verified_tls() {
    let task = parse_json("ecs-task-definition.json");
    assert_eq!(task["family"], "cusip-loader");
    assert_eq!(task["networkMode"], "awsvpc");
    assert_eq!(task["requiresCompatibilities"][0], "FARGATE");
    let containers = task["containerDefinitions"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["name"], "cusip-loader");
    assert!(
        c.get("portMappings").is_none(),
        "a batch job publishes no port"
    );
    // The loader needs seconds after SIGTERM; ECS's default grace is 30 s.
    assert!(c["stopTimeout"].as_u64().unwrap_or(0) >= 30);
    assert_eq!(c["logConfiguration"]["logDriver"], "awslogs");
    let env: Vec<(&str, &str)> = c["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["value"].as_str().unwrap()))
        .collect();
    let value = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    assert_eq!(value("CUSIP_DB_SSLMODE"), Some("verify-full"));
    assert_eq!(value("CUSIP_LOG_FORMAT"), Some("json"));
    // The README promises the JSON summary in the log stream: the task asks for it.
    assert_eq!(value("CUSIP_OUTPUT"), Some("json"));
    assert!(value("TZ").is_some(), "--date defaults to today in TZ");
    assert!(
        value("CUSIP_DB_PASSWORD").is_none(),
        "the password belongs in secrets, not in environment"
    );
}

#[test]
fn stonebranch_script_parses() {
    let script = deploy().join("stonebranch-load.sh");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "bash -n: {}", describe(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&script).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "stonebranch-load.sh is not executable");
    }
}

#[test]
fn stonebranch_validates_a_good_date_and_writes_the_summary() {
    let dir = scratch("good");
    let data = root().join("testdata");
    let out = stonebranch(
        &[
            "2024-01-15",
            "--validate-only",
            "--dir",
            data.to_str().unwrap(),
        ],
        Some(&dir),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let files = summary_files(&dir);
    assert_eq!(files.len(), 1, "one summary file: {files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("cusip-load-2024-01-15-"), "{name}");
    let summary: Value = serde_json::from_str(&read(&files[0])).unwrap();
    assert_eq!(statuses(&summary), ["valid", "valid", "valid"]);
    assert_eq!(summary["exit_code"], 0);
    // stdout carries the same summary; stderr ends with the interpretation.
    let printed: Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON summary");
    assert_eq!(printed, summary);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stonebranch-load: exit 0:"), "{stderr}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stonebranch_passes_data_rejected_through() {
    let data = scratch("bad-data");
    let sums = scratch("bad-sums");
    let testdata = root().join("testdata");
    fs::copy(
        testdata.join("bad/badint-E.PIP"),
        data.join("CED01-15E.PIP"),
    )
    .unwrap();
    for f in ["CED01-15R.PIP", "CED01-15A.PIP"] {
        fs::copy(testdata.join(f), data.join(f)).unwrap();
    }
    let out = stonebranch(
        &[
            "2024-01-15",
            "--validate-only",
            "--dir",
            data.to_str().unwrap(),
        ],
        Some(&sums),
    );
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    let files = summary_files(&sums);
    assert_eq!(files.len(), 1, "one summary file: {files:?}");
    let summary: Value = serde_json::from_str(&read(&files[0])).unwrap();
    assert_eq!(statuses(&summary), ["valid", "failed", "not_attempted"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stonebranch-load: exit 65: data rejected"),
        "{stderr}"
    );
    fs::remove_dir_all(&data).unwrap();
    fs::remove_dir_all(&sums).unwrap();
}

#[test]
fn stonebranch_without_summary_dir_prints_the_summary_only() {
    let data = root().join("testdata");
    let out = stonebranch(
        &[
            "2024-01-16",
            "--validate-only",
            "--dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON summary");
    assert_eq!(statuses(&printed), ["valid", "valid", "valid"]);
}

#[test]
fn stonebranch_refuses_a_malformed_date_without_running_the_loader() {
    let out = stonebranch(&["15/01/2024"], None);
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "{}", describe(&out));
}

#[test]
fn dist_binary_runs() {
    let root = root();
    let warm = root.join("target/release/cusip-loader").exists();
    let asked = std::env::var("CUSIP_TEST_DIST").ok();
    let profile = match asked.as_deref() {
        Some("release") => "release",
        _ if warm => "release",
        Some("1") => "dev",
        _ => {
            eprintln!(
                "dist_binary_runs: skipped (no target/release/cusip-loader yet; set \
                 CUSIP_TEST_DIST=1 to check `make dist` with the dev profile, or \
                 CUSIP_TEST_DIST=release for the release build)"
            );
            return;
        }
    };
    // A make or cargo above us (make test) must not hand its jobserver to this make.
    let out = Command::new("make")
        .arg("-C")
        .arg(&root)
        .arg("dist")
        .arg(format!("DIST_PROFILE={profile}"))
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("CARGO_MAKEFLAGS")
        .output()
        .expect("make runs");
    assert!(out.status.success(), "make dist: {}", describe(&out));
    let dist = root.join("target/dist/cusip-loader");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("target/dist/cusip-loader ({profile} profile")),
        "make dist names its artifact: {}",
        describe(&out)
    );

    let help = Command::new(&dist).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0), "{}", describe(&help));

    let run = Command::new(&dist)
        .args(["--validate-only", "--date", "2024-01-15", "--dir"])
        .arg(root.join("testdata"))
        .env_remove("CUSIP_FILE_SOURCE")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
}

#[test]
fn stonebranch_keeps_the_json_summary_of_a_usage_error() {
    let sums = scratch("usage-sums");
    let out = stonebranch(&["2024-01-15", "--bogus"], Some(&sums));
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(summary["exit_code"], 64);
    assert!(
        summary["error"].as_str().unwrap().contains("--bogus"),
        "{summary}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("printed no summary"), "{stderr}");
    assert_eq!(summary_files(&sums).len(), 1);
}
