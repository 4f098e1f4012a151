//! The SARIF 2.1.0 renderer, for code-scanning importers. Rules come from
//! the check registry. Level mapping: deny → `error`, warn → `warning`,
//! info → `note`. A finding's image path is its artifact location; a
//! finding about packages is located at the rpm database.

use serde_json::{Value, json};

use super::Report;
use crate::checks::{CHECKS, Level};

/// SARIF's level for ours.
pub fn sarif_level(level: Level) -> &'static str {
    match level {
        Level::Deny => "error",
        Level::Warn => "warning",
        Level::Info => "note",
    }
}

/// Render as SARIF 2.1.0 (pretty JSON, trailing newline).
pub fn render(report: &Report) -> String {
    let rules: Vec<Value> = CHECKS
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.id,
                "shortDescription": { "text": c.summary },
                "fullDescription": { "text": c.description },
                "help": { "text": c.description },
                "defaultConfiguration": { "level": sarif_level(c.default_level) },
                "properties": { "overridable": c.overridable },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let uri = f
                .path
                .clone()
                .unwrap_or_else(|| "/usr/lib/sysimage/rpm".to_string());
            let mut r = json!({
                "ruleId": f.check,
                "ruleIndex": CHECKS.iter().position(|c| c.id == f.check),
                "level": sarif_level(f.level),
                "message": { "text": f.message },
                "locations": [{
                    "physicalLocation": { "artifactLocation": { "uri": uri } }
                }],
            });
            let mut props = serde_json::Map::new();
            if let Some(p) = &f.package {
                props.insert("package".into(), json!(p));
            }
            if let Some(by) = &f.allowed_by {
                props.insert("allowedBy".into(), json!(by));
            }
            if !props.is_empty() {
                r["properties"] = Value::Object(props);
            }
            r
        })
        .collect();
    let mut doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "ostree-finalize",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
            "properties": { "command": report.command, "verdict": report.verdict },
        }],
    });
    if let Some(source) = &report.base_source {
        doc["runs"][0]["properties"]["baseSource"] =
            json!({ "reference": source.reference, "foundBy": source.found_by });
    }
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}
