//! The YAML policy: defaults + a policy file + CLI flags → what each check
//! does. Parsed raw (serde, unknown keys refused), then validated into
//! compiled form (levels resolved, globs compiled). Every error is
//! reported at once, each with its file, line and column.
//!
//! ```yaml
//! checks:                  # per-check level: deny, warn, info or off
//!   world-writable: deny
//! waivers:                 # allow findings on matching paths
//!   - check: base-modified
//!     paths: ["/usr/lib/python3*/site-packages/**"]
//!     reason: pip-installed overrides reviewed in JIRA-123
//! packages:                # base packages that may be overridden
//!   - name: kernel*
//!     reason: hotfix kernel from the vendor
//! clean:                   # extra paths finalize removes
//!   - /usr/share/doc/**
//! keep-logs:               # /var/log files the build wrote that finalize
//!   - /var/log/myapp/**    # keeps (as /var content) instead of cleaning
//! compare-selinux: false   # also compare security.selinux
//! ```

use std::collections::BTreeMap;

use anyhow::Result;
use cap_std::fs::Dir;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::checks::{self, Level};

/// Flags that decide the verdict: shared by `finalize`, `diff` and `lint`.
#[derive(Debug, clap::Args, Default)]
pub struct RuleArgs {
    /// Allow deliberate changes to base content: they become recorded
    /// warnings. The image must then carry LABEL ostree.override=true.
    #[arg(long)]
    pub allow_overrides: bool,
    /// The policy file (YAML). Default: /etc/ostree-finalize/policy.yaml in
    /// the tree, else /usr/lib/ostree-finalize/policy.yaml, else none.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<std::path::PathBuf>,
    /// Do not run this check (repeatable). See `list-checks`.
    #[arg(long, value_name = "ID")]
    pub skip: Vec<String>,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    pub fatal_warnings: bool,
}

/// Policy locations inside the tree, in order of precedence.
pub const TREE_POLICIES: &[&str] = &[
    "/etc/ostree-finalize/policy.yaml",
    "/usr/lib/ostree-finalize/policy.yaml",
];

/// A check's level as a policy sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// Report at this level.
    Level(Level),
    /// Do not run the check.
    Off,
}

/// A path waiver.
#[derive(Debug, Clone)]
pub struct Waiver {
    /// The check it waives.
    pub check: &'static str,
    /// The patterns, as written.
    pub patterns: Vec<String>,
    globs: GlobSet,
    /// Why.
    pub reason: String,
    /// Where it was written (`FILE:LINE`).
    pub origin: String,
}

impl Waiver {
    /// Does it cover this finding?
    pub fn matches(&self, check: &str, path: Option<&str>) -> bool {
        self.check == check && path.is_some_and(|p| self.globs.is_match(p))
    }
}

/// A base package that may be overridden.
#[derive(Debug, Clone)]
pub struct PackageRule {
    /// The name pattern, as written.
    pub pattern: String,
    glob: globset::GlobMatcher,
    /// Why.
    pub reason: String,
    /// Where it was written (`FILE:LINE`).
    pub origin: String,
}

impl PackageRule {
    /// Does it cover this NEVRA's package name?
    pub fn matches_nevra(&self, nevra: &str) -> bool {
        let name = rpm_version::Nevra::parse(nevra).name().to_string();
        self.glob.is_match(&name)
    }
}

/// The validated policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Where it came from, when a file was used.
    pub origin: Option<String>,
    /// Per-check settings.
    pub settings: BTreeMap<&'static str, Setting>,
    /// Path waivers.
    pub waivers: Vec<Waiver>,
    /// Packages that may be overridden.
    pub packages: Vec<PackageRule>,
    /// Extra paths finalize cleans (patterns as written, and compiled).
    pub clean_patterns: Vec<String>,
    /// Compiled `clean` patterns.
    pub clean: GlobSet,
    /// `/var/log` files to keep (patterns as written).
    pub keep_logs_patterns: Vec<String>,
    /// Compiled `keep-logs` patterns.
    pub keep_logs: GlobSet,
    /// Also compare `security.selinux`.
    pub compare_selinux: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaiver {
    check: String,
    paths: Vec<String>,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    name: String,
    reason: String,
}

/// Errors with locations, gathered while validating.
struct Errors<'a> {
    origin: &'a str,
    text: &'a str,
    list: Vec<String>,
}

impl Errors<'_> {
    /// Record an error. Control characters in it (a key or a value from
    /// the file may hold a newline) are escaped, so that each error stays
    /// one line of the report.
    fn push(&mut self, (line, col): (usize, usize), msg: impl std::fmt::Display) {
        let msg: String = msg
            .to_string()
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        self.list
            .push(format!("{}:{line}:{col}: {msg}", self.origin));
    }

    fn at_key(&self, key: &str) -> (usize, usize) {
        locate_key(self.text, key, 0)
    }
}

/// Parse and validate a policy. `origin` names the file in messages.
pub fn parse(text: &str, origin: &str) -> Result<Policy> {
    let mut errors = Errors {
        origin,
        text,
        list: Vec::new(),
    };
    let mut policy = Policy {
        origin: Some(origin.to_string()),
        ..Policy::default()
    };
    let value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let loc = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            errors.push(loc, format!("not valid YAML: {e}"));
            return Err(finish(errors));
        }
    };
    let map = match value {
        serde_yaml::Value::Null => return Ok(policy),
        serde_yaml::Value::Mapping(m) => m,
        _ => {
            errors.push((1, 1), "a policy is a mapping of keys (checks, waivers, …)");
            return Err(finish(errors));
        }
    };
    let mut clean = GlobSetBuilder::new();
    let mut keep_logs = GlobSetBuilder::new();
    for (key, value) in map {
        let key = key.as_str().unwrap_or("").to_string();
        match key.as_str() {
            "checks" => levels(&value, &mut policy, &mut errors),
            "waivers" => waivers(&value, &mut policy, &mut errors),
            "packages" => packages(&value, &mut policy, &mut errors),
            "clean" => {
                for (i, item) in seq(&value, "clean", &mut errors).iter().enumerate() {
                    let loc = locate_item(text, "clean", i);
                    match item.as_str().map(|p| (p, glob(p))) {
                        Some((p, Ok(g))) if p.starts_with('/') => {
                            clean.add(g);
                            policy.clean_patterns.push(p.to_string());
                        }
                        Some((p, Ok(_))) => {
                            errors.push(loc, format!("clean: `{p}` must be absolute"))
                        }
                        Some((_, Err(e))) => errors.push(loc, format!("clean: {e}")),
                        None => errors.push(loc, "clean: each entry is a path glob"),
                    }
                }
            }
            "keep-logs" => {
                for (i, item) in seq(&value, "keep-logs", &mut errors).iter().enumerate() {
                    let loc = locate_item(text, "keep-logs", i);
                    match item.as_str().map(|p| (p, glob(p))) {
                        Some((p, Ok(g))) if p.starts_with("/var/log/") => {
                            keep_logs.add(g);
                            policy.keep_logs_patterns.push(p.to_string());
                        }
                        Some((p, Ok(_))) => errors.push(
                            loc,
                            format!("keep-logs: `{p}` must be a path under /var/log/"),
                        ),
                        Some((_, Err(e))) => errors.push(loc, format!("keep-logs: {e}")),
                        None => errors.push(loc, "keep-logs: each entry is a path glob"),
                    }
                }
            }
            "compare-selinux" => match value.as_bool() {
                Some(b) => policy.compare_selinux = b,
                None => errors.push(
                    errors.at_key(&key),
                    "compare-selinux: expected true or false",
                ),
            },
            other => errors.push(
                errors.at_key(other),
                format!(
                    "unknown key `{other}`; expected one of checks, waivers, packages, clean, \
                     keep-logs, compare-selinux"
                ),
            ),
        }
    }
    policy.clean = clean.build().unwrap_or_else(|_| GlobSet::empty());
    policy.keep_logs = keep_logs.build().unwrap_or_else(|_| GlobSet::empty());
    if errors.list.is_empty() {
        Ok(policy)
    } else {
        Err(finish(errors))
    }
}

fn finish(errors: Errors) -> anyhow::Error {
    let n = errors.list.len();
    anyhow::anyhow!(
        "{}: invalid policy ({n} error{}):\n  {}",
        errors.origin,
        if n == 1 { "" } else { "s" },
        errors.list.join("\n  ")
    )
}

fn glob(pattern: &str) -> Result<Glob, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("bad glob `{pattern}`: {}", e.kind()))
}

fn seq<'v>(
    value: &'v serde_yaml::Value,
    key: &str,
    errors: &mut Errors,
) -> &'v [serde_yaml::Value] {
    match value {
        serde_yaml::Value::Sequence(s) => s,
        serde_yaml::Value::Null => &[],
        _ => {
            errors.push(errors.at_key(key), format!("{key}: expected a list"));
            &[]
        }
    }
}

fn check_id(id: &str) -> Option<&'static str> {
    checks::lookup(id).map(|c| c.id)
}

fn levels(value: &serde_yaml::Value, policy: &mut Policy, errors: &mut Errors) {
    let Some(map) = value.as_mapping() else {
        errors.push(
            errors.at_key("checks"),
            "checks: expected a mapping of check id to level",
        );
        return;
    };
    for (k, v) in map {
        let id = k.as_str().unwrap_or("");
        let loc = locate_key(errors.text, id, 0);
        let Some(id) = check_id(id) else {
            errors.push(
                loc,
                format!("checks: unknown check `{id}` (see `ostree-finalize list-checks`)"),
            );
            continue;
        };
        let setting = match v.as_str() {
            Some("deny") => Setting::Level(Level::Deny),
            Some("warn") => Setting::Level(Level::Warn),
            Some("info") => Setting::Level(Level::Info),
            Some("off") => Setting::Off,
            _ => {
                errors.push(
                    loc,
                    format!("checks: {id}: expected deny, warn, info or off"),
                );
                continue;
            }
        };
        policy.settings.insert(id, setting);
    }
}

/// The message of a serde error, without serde_yaml's own (meaningless
/// here) position.
fn serde_message(e: &serde_yaml::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Where the error of one list item is: the unknown field it names, or
/// the item itself.
fn item_error_loc(text: &str, section: &str, i: usize, msg: &str) -> (usize, usize) {
    let item = locate_item(text, section, i);
    if let Some(field) = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        let (line, col) = locate_key(text, field, item.0.saturating_sub(1));
        if line >= item.0 {
            return (line, col);
        }
    }
    item
}

fn waivers(value: &serde_yaml::Value, policy: &mut Policy, errors: &mut Errors) {
    for (i, item) in seq(value, "waivers", errors).iter().enumerate() {
        let raw: RawWaiver = match serde_yaml::from_value(item.clone()) {
            Ok(r) => r,
            Err(e) => {
                let msg = serde_message(&e);
                let loc = item_error_loc(errors.text, "waivers", i, &msg);
                errors.push(loc, format!("waivers[{i}]: {msg}"));
                continue;
            }
        };
        let loc = locate_item(errors.text, "waivers", i);
        let origin = format!("{}:{}", errors.origin, loc.0);
        let Some(check) = check_id(&raw.check) else {
            errors.push(loc, format!("waivers[{i}]: unknown check `{}`", raw.check));
            continue;
        };
        if raw.reason.trim().is_empty() {
            errors.push(loc, format!("waivers[{i}]: every waiver needs a reason"));
        }
        if raw.paths.is_empty() {
            errors.push(loc, format!("waivers[{i}]: paths is empty"));
        }
        let mut set = GlobSetBuilder::new();
        for p in &raw.paths {
            match glob(p) {
                Ok(g) => {
                    set.add(g);
                }
                Err(e) => errors.push(loc, format!("waivers[{i}]: {e}")),
            }
        }
        policy.waivers.push(Waiver {
            check,
            patterns: raw.paths,
            globs: set.build().unwrap_or_else(|_| GlobSet::empty()),
            reason: raw.reason,
            origin,
        });
    }
}

fn packages(value: &serde_yaml::Value, policy: &mut Policy, errors: &mut Errors) {
    for (i, item) in seq(value, "packages", errors).iter().enumerate() {
        let raw: RawPackage = match serde_yaml::from_value(item.clone()) {
            Ok(r) => r,
            Err(e) => {
                let msg = serde_message(&e);
                let loc = item_error_loc(errors.text, "packages", i, &msg);
                errors.push(loc, format!("packages[{i}]: {msg}"));
                continue;
            }
        };
        let loc = locate_item(errors.text, "packages", i);
        if raw.reason.trim().is_empty() {
            errors.push(
                loc,
                format!("packages[{i}]: every package override needs a reason"),
            );
        }
        match glob(&raw.name) {
            Ok(g) => policy.packages.push(PackageRule {
                pattern: raw.name,
                glob: g.compile_matcher(),
                reason: raw.reason,
                origin: format!("{}:{}", errors.origin, loc.0),
            }),
            Err(e) => errors.push(loc, format!("packages[{i}]: {e}")),
        }
    }
}

/// 1-based (line, column) of the first `key:` at or after line index
/// `from` (0-based), as a mapping key or the first key of a list item.
fn locate_key(text: &str, key: &str, from: usize) -> (usize, usize) {
    for (n, line) in text.lines().enumerate().skip(from) {
        let trimmed = line.trim_start();
        let body = trimmed.strip_prefix("- ").unwrap_or(trimmed).trim_start();
        let unquoted = body
            .strip_prefix('"')
            .and_then(|b| b.strip_prefix(key))
            .and_then(|b| b.strip_prefix('"'))
            .or_else(|| body.strip_prefix(key));
        if unquoted.is_some_and(|rest| rest.trim_start().starts_with(':')) {
            return (n + 1, line.len() - body.len() + 1);
        }
    }
    (1, 1)
}

/// 1-based (line, column) of item `i` of the top-level list `section`.
fn locate_item(text: &str, section: &str, i: usize) -> (usize, usize) {
    let start = locate_key(text, section, 0).0;
    let mut indent: Option<usize> = None;
    let mut seen = 0;
    for (n, line) in text.lines().enumerate().skip(start) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let col = line.len() - trimmed.len();
        if col == 0 && !trimmed.starts_with('-') {
            break; // next top-level key
        }
        if trimmed.starts_with('-') && indent.is_none_or(|d| col == d) {
            indent = Some(col);
            if seen == i {
                return (n + 1, col + 1);
            }
            seen += 1;
        }
    }
    (start, 1)
}

/// Where to find the policy: `--policy FILE` (a host path), else the
/// tree's own files. Returns the default policy when there is none.
pub fn load(root: Option<&Dir>, file: Option<&std::path::Path>) -> Result<Policy> {
    if let Some(file) = file {
        let bytes = crate::rootfs::read_ambient_file(file)?;
        let origin = file.display().to_string();
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{origin}: policy is not UTF-8 text"))?;
        return parse(&text, &origin);
    }
    let Some(root) = root else {
        return Ok(Policy::default());
    };
    for path in TREE_POLICIES {
        match root.read_to_string(&path[1..]) {
            Ok(text) => return parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(anyhow::Error::from(e).context(format!("{path}: cannot read"))),
        }
    }
    Ok(Policy::default())
}

/// How levels are resolved: flags and the policy.
#[derive(Debug, Clone, Copy)]
pub struct Resolve<'a> {
    /// `--allow-overrides`: overridable denies become warnings.
    pub allow_overrides: bool,
    /// Per-check levels, waivers and package overrides.
    pub policy: &'a Policy,
    /// `--skip ID`: checks not run at all.
    pub skip: &'a [String],
}

/// Skip, re-level and allow findings as flags and the policy say; report
/// waivers that matched nothing.
pub fn apply(out: &mut Vec<checks::Finding>, resolve: Resolve) {
    let policy = resolve.policy;
    out.retain(|f| {
        !resolve.skip.iter().any(|s| s == f.check)
            && policy.settings.get(f.check) != Some(&Setting::Off)
    });
    let mut waiver_used = vec![false; policy.waivers.len()];
    let mut package_used = vec![false; policy.packages.len()];
    for f in out.iter_mut() {
        if let Some(Setting::Level(level)) = policy.settings.get(f.check) {
            f.level = *level;
        }
        let overridable = checks::lookup(f.check).is_some_and(|c| c.overridable);
        let waiver = policy
            .waivers
            .iter()
            .position(|w| w.matches(f.check, f.path.as_deref()));
        if let Some(i) = waiver {
            waiver_used[i] = true;
        }
        let package = overridable
            .then(|| {
                let nevra = f.package.as_deref()?;
                policy.packages.iter().position(|r| r.matches_nevra(nevra))
            })
            .flatten();
        if let Some(i) = package {
            package_used[i] = true;
        }
        if f.level != Level::Deny {
            continue;
        }
        let (by, note) = if overridable && resolve.allow_overrides {
            (
                "--allow-overrides".to_string(),
                checks::OVERRIDE_ALLOWED.to_string(),
            )
        } else if let Some(w) = waiver.map(|i| &policy.waivers[i]) {
            (
                format!("waiver ({})", w.origin),
                format!("Allowed by the waiver at {}: {}", w.origin, w.reason),
            )
        } else if let Some(r) = package.map(|i| &policy.packages[i]) {
            (
                format!("package override {} ({})", r.pattern, r.origin),
                format!(
                    "Allowed by the package override for {} at {}: {}. The image must carry \
                     LABEL ostree.override=true.",
                    r.pattern, r.origin, r.reason
                ),
            )
        } else {
            if overridable {
                f.message = format!("{} {}", f.message, checks::OVERRIDE_FIX);
            }
            continue;
        };
        f.level = Level::Warn;
        f.allowed_by = Some(by);
        f.message = format!("{} {note}", f.message);
    }
    for (w, used) in policy.waivers.iter().zip(&waiver_used) {
        if !used {
            let msg = format!(
                "the waiver for {} on {} at {} matched nothing; remove it",
                w.check,
                w.patterns.join(", "),
                w.origin
            );
            out.push(checks::Finding::new(
                &checks::waivers::UNUSED_WAIVER,
                None,
                msg,
            ));
        }
    }
    for (r, used) in policy.packages.iter().zip(&package_used) {
        if !used {
            let msg = format!(
                "the package override for {} at {} matched nothing; remove it",
                r.pattern, r.origin
            );
            out.push(checks::Finding::new(
                &checks::waivers::UNUSED_WAIVER,
                None,
                msg,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_policy_validates() {
        let p = parse(
            "checks:\n  world-writable: deny\n  boot-nonempty: off\nwaivers:\n  - check: base-modified\n    paths: [\"/usr/lib/python3*/site-packages/**\"]\n    reason: reviewed\npackages:\n  - name: kernel*\n    reason: hotfix\nclean:\n  - /usr/share/doc/**\ncompare-selinux: true\n",
            "p.yaml",
        )
        .unwrap();
        assert_eq!(p.settings["world-writable"], Setting::Level(Level::Deny));
        assert_eq!(p.settings["boot-nonempty"], Setting::Off);
        assert!(p.waivers[0].matches(
            "base-modified",
            Some("/usr/lib/python3.12/site-packages/x/y.py")
        ));
        assert!(!p.waivers[0].matches("base-modified", Some("/usr/lib/python3.12/other")));
        assert_eq!(p.waivers[0].origin, "p.yaml:5");
        assert!(p.packages[0].matches_nevra("kernel-core-6.1-1.x86_64"));
        assert!(p.clean.is_match("/usr/share/doc/a/b"));
        assert!(p.compare_selinux);
    }

    #[test]
    fn every_error_is_reported_at_once_with_line_and_column() {
        let text = "checks:\n  no-such-check: deny\n  base-modified: loud\nwaivers:\n  - check: base-modified\n    paths: [\"/a\"]\n    reason: ok\n  - check: base-removed\n    pathz: [\"/b\"]\n    reason: x\n  - check: base-removed\n    paths: [\"/c\"]\n    reason: \"\"\nsurprise: 1\n";
        let err = parse(text, "policy.yaml").unwrap_err().to_string();
        assert!(err.contains("5 errors"), "{err}");
        assert!(
            err.contains("policy.yaml:2:3: checks: unknown check `no-such-check`"),
            "{err}"
        );
        assert!(
            err.contains("policy.yaml:3:3: checks: base-modified: expected deny"),
            "{err}"
        );
        assert!(
            err.contains("policy.yaml:9:5: waivers[1]: unknown field `pathz`"),
            "{err}"
        );
        assert!(
            err.contains("policy.yaml:11:3: waivers[2]: every waiver needs a reason"),
            "{err}"
        );
        assert!(
            err.contains("policy.yaml:14:1: unknown key `surprise`"),
            "{err}"
        );
    }

    #[test]
    fn keep_logs_takes_globs_under_var_log_only() {
        let p = parse("keep-logs:\n  - /var/log/app/**\n", "p.yaml").unwrap();
        assert!(p.keep_logs.is_match("/var/log/app/x.log"));
        assert!(!p.keep_logs.is_match("/var/log/other.log"));
        let err = parse("keep-logs:\n  - /var/lib/x\n  - log/y\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 errors"), "{err}");
        assert!(
            err.contains("p.yaml:2:3: keep-logs: `/var/lib/x` must be a path under /var/log/"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let err = parse("checks: [unclosed\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.yaml:2:1") || err.contains("p.yaml:1:"),
            "{err}"
        );
    }

    #[test]
    fn every_error_stays_on_one_line() {
        let text = "\"unknown\\n  key\\tx\": 1\nchecks:\n  \"a\\nb\": deny\n";
        let err = parse(text, "p.yaml").unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert!(lines[0].contains("2 errors"), "{err}");
        assert!(
            lines[1].contains("unknown key `unknown\\n  key\\tx`"),
            "{err}"
        );
        assert!(lines[2].contains("unknown check `a\\nb`"), "{err}");
    }

    #[test]
    fn an_empty_file_is_the_default_policy() {
        let p = parse("", "p.yaml").unwrap();
        assert!(p.settings.is_empty() && p.waivers.is_empty());
    }
}
