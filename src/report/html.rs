//! The report page: one HTML file with every figure inlined as SVG, tables
//! from the scorer, and what was skipped. Needs no network to open.

use std::fmt::Write;
use std::path::Path;

use super::inputs::Session;

pub struct Page {
    head: String,
    /// (section heading, HTML) in the order added; sections keep first-seen order.
    sections: Vec<(String, String)>,
}

/// Escape text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Page {
    pub fn new(session: &Session, paradigm: &str) -> Self {
        let mut head = String::new();
        let _ = write!(
            head,
            "<h1>neuroloop session report</h1>\n<p>Events: <code>{}</code> ({} rows); paradigm: {paradigm}; recording: <code>{}</code>.</p>\n",
            escape(&session.events_path.display().to_string()),
            session.events.len(),
            session
                .recording
                .as_ref()
                .map_or("none found".to_string(), |p| escape(&p.display().to_string())),
        );
        if let Some(summary) = &session.summary {
            let field = |k: &str| summary[k].as_str().unwrap_or("?").to_string();
            let _ = writeln!(
                head,
                "<p>Status: {}; command: {}; input: <code>{}</code>; duration {:.1} s at {} Hz; counts: <code>{}</code>.</p>",
                escape(&field("status")),
                escape(&field("command")),
                escape(&field("input")),
                summary["duration_s"].as_f64().unwrap_or(f64::NAN),
                summary["rate_hz"].as_f64().unwrap_or(f64::NAN),
                escape(&summary["counts"].to_string()),
            );
        }
        Self {
            head,
            sections: Vec::new(),
        }
    }

    fn section(&mut self, heading: &str) -> &mut String {
        let index = match self.sections.iter().position(|(h, _)| h == heading) {
            Some(i) => i,
            None => {
                self.sections.push((heading.to_string(), String::new()));
                self.sections.len() - 1
            }
        };
        &mut self.sections[index].1
    }

    /// Inline the SVG at `svg` (its PNG twin is linked).
    pub fn figure(&mut self, heading: &str, svg: &Path) {
        let text = std::fs::read_to_string(svg).unwrap_or_default();
        let png = svg.with_extension("png");
        let name = png
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let _ = writeln!(
            self.section(heading),
            "<figure>{text}<figcaption><a href=\"{0}\">{0}</a></figcaption></figure>",
            escape(&name)
        );
    }

    /// A two-column table of every number in `value` (nested keys joined by `.`).
    pub fn table(&mut self, heading: &str, value: &serde_json::Value) {
        let mut rows = Vec::new();
        flatten("", value, &mut rows);
        let mut html = format!("<h3>{}</h3>\n<table>\n", escape(heading));
        for (key, v) in rows {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(&key),
                escape(&v)
            );
        }
        html.push_str("</table>\n");
        self.section("Evaluation").push_str(&html);
    }

    pub fn finish(self, skipped: &[String]) -> String {
        let mut html = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>neuroloop session report</title>\n<style>body{font-family:sans-serif;max-width:1250px;margin:1em auto;padding:0 1em}figure{margin:1em 0}svg{max-width:100%;height:auto}table{border-collapse:collapse}td{border:1px solid #ccc;padding:2px 8px}td:last-child{text-align:right;font-family:monospace}.skipped{background:#fff4e0;padding:0.5em 1em;border-left:4px solid #e90}</style></head><body>\n",
        );
        html.push_str(&self.head);
        if !skipped.is_empty() {
            html.push_str("<div class=\"skipped\"><h2>Skipped</h2><ul>\n");
            for note in skipped {
                let _ = writeln!(html, "<li>{}</li>", escape(note));
            }
            html.push_str("</ul></div>\n");
        }
        for (heading, body) in &self.sections {
            let _ = write!(html, "<h2>{}</h2>\n{body}", escape(heading));
        }
        html.push_str("</body></html>\n");
        html
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                flatten(&key(k), v, rows);
            }
        }
        serde_json::Value::Number(n) => rows.push((
            prefix.to_string(),
            n.as_f64().map_or(n.to_string(), |f| {
                if f.fract() == 0.0 {
                    format!("{f:.0}")
                } else {
                    format!("{f:.4}")
                }
            }),
        )),
        serde_json::Value::Null => rows.push((prefix.to_string(), "n/a".into())),
        other => rows.push((prefix.to_string(), other.to_string())),
    }
}
