//! The configuration described from its own types: `docs/CONFIG.md` (every
//! key with its type, default, environment variable, flag and meaning) and
//! the commented TOML of `streamforge config --default`. The words come
//! from the doc comments of [`Config`] and its sections (through their
//! JSON Schema, `schemars`), the defaults from [`Config::default`], the
//! flags from the `serve` command's `[key: …]` notes; nothing is written
//! twice.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::CommandFactory;
use serde_json::Value;

use super::{Config, ENV_PREFIX};
use crate::cli::Cli;

/// One key of the configuration, as the reference lists it.
struct Key {
    /// `http.listen`; a table array's keys are `live.pull[].url`.
    path: String,
    kind: String,
    description: String,
    /// The default as TOML; `None` when unset.
    default: Option<toml::Value>,
    /// Keys of an array of tables (`[[live.pull]]`), listed after it.
    items: Vec<Key>,
}

/// A section (`[http]`), or the top level (`name` empty).
struct Section {
    name: String,
    description: String,
    keys: Vec<Key>,
}

fn sections() -> Vec<Section> {
    let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or(Value::Null);
    let defaults = toml::Value::try_from(Config::default())
        .ok()
        .and_then(|v| v.as_table().cloned())
        .unwrap_or_default();
    let definitions = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut top = Section {
        name: String::new(),
        description: "Keys outside any section.".to_owned(),
        keys: Vec::new(),
    };
    let mut sections = Vec::new();
    for (name, property) in properties(&schema) {
        let target = resolve(property, &definitions);
        if target.get("properties").is_some() {
            let section_defaults = defaults.get(name).and_then(toml::Value::as_table);
            sections.push(Section {
                name: name.clone(),
                description: text(property, target),
                keys: keys(target, &definitions, name, section_defaults),
            });
        } else {
            top.keys.push(key(
                name.clone(),
                property,
                &definitions,
                defaults.get(name),
            ));
        }
    }
    sections.insert(0, top);
    sections
}

/// The properties of an object schema, in declaration order.
fn properties(schema: &Value) -> Vec<(&String, &Value)> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.iter().collect())
        .unwrap_or_default()
}

/// The keys of object schema `object` under `prefix`.
fn keys(
    object: &Value,
    definitions: &Value,
    prefix: &str,
    defaults: Option<&toml::Table>,
) -> Vec<Key> {
    properties(object)
        .into_iter()
        .map(|(name, property)| {
            let default = defaults.and_then(|d| d.get(name));
            key(format!("{prefix}.{name}"), property, definitions, default)
        })
        .collect()
}

fn key(path: String, property: &Value, definitions: &Value, default: Option<&toml::Value>) -> Key {
    let target = resolve(property, definitions);
    let items = target
        .get("items")
        .map(|items| resolve(items, definitions))
        .filter(|items| items.get("properties").is_some())
        .map(|items| keys(items, definitions, &format!("{path}[]"), None))
        .unwrap_or_default();
    Key {
        kind: kind(target, definitions),
        description: text(property, target),
        default: default.cloned(),
        path,
        items,
    }
}

/// The definition a `$ref` names, or the schema itself.
fn resolve<'a>(schema: &'a Value, definitions: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| definitions.get(name))
        .unwrap_or(schema)
}

/// The description of a property, else of the type it names.
fn text(property: &Value, target: &Value) -> String {
    let of = |v: &Value| {
        v.get("description")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    of(property)
        .or_else(|| of(target))
        .unwrap_or_default()
        .replace('\n', " ")
}

/// A short type: `string`, `integer`, `duration`, `` `a` | `b` ``, …
fn kind(schema: &Value, definitions: &Value) -> String {
    let values: Vec<String> = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
        .map(|variants| {
            variants
                .iter()
                .filter_map(|v| {
                    v.get("const")
                        .or_else(|| v.get("enum").and_then(|e| e.get(0)))
                        .and_then(Value::as_str)
                        .map(|s| format!("`{s}`"))
                })
                .collect()
        })
        .or_else(|| {
            schema.get("enum").and_then(Value::as_array).map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .map(|s| format!("`{s}`"))
                    .collect()
            })
        })
        .unwrap_or_default();
    if !values.is_empty() {
        return values.join(" \\| ");
    }
    if schema.get("format").and_then(Value::as_str) == Some("duration") {
        return "duration".to_owned();
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let optional = types.contains(&"null");
    let base = match types.iter().find(|t| **t != "null") {
        Some(&"array") => {
            let items = schema
                .get("items")
                .map(|i| resolve(i, definitions))
                .unwrap_or(&Value::Null);
            if items.get("properties").is_some() {
                "array of tables".to_owned()
            } else {
                format!("array of {}", kind(items, definitions))
            }
        }
        Some(t) => (*t).to_owned(),
        None => "value".to_owned(),
    };
    if optional {
        format!("{base} (optional)")
    } else {
        base
    }
}

/// The environment variable of a key.
fn env_var(path: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        path.replace('.', "_").to_ascii_uppercase()
    )
}

/// The `serve` flags by the keys they set (their help ends with
/// `[key: …]` or `[keys: …, …]`).
fn flags() -> BTreeMap<String, String> {
    let mut flags = BTreeMap::new();
    let cli = Cli::command();
    let Some(serve) = cli.find_subcommand("serve") else {
        return flags;
    };
    for arg in serve.get_arguments() {
        let (Some(long), Some(help)) = (arg.get_long(), arg.get_help()) else {
            continue;
        };
        let help = help.to_string().replace('\n', " ");
        let Some(rest) = help
            .split_once("[key: ")
            .or_else(|| help.split_once("[keys: "))
            .map(|(_, rest)| rest)
        else {
            continue;
        };
        let listed = rest.split([';', ']']).next().unwrap_or("");
        for key in listed.split(',') {
            flags.insert(key.trim().to_owned(), format!("--{long}"));
        }
    }
    flags
}

fn inline(value: &toml::Value) -> String {
    value.to_string()
}

/// `docs/CONFIG.md`.
pub fn markdown() -> String {
    let flags = flags();
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the configuration types by `streamforge config --reference`\n\
         (a test fails when this file is stale). Settings come from, highest\n\
         precedence first: command-line flags, the TOML file given by `--config`,\n\
         `STREAMFORGE_*` environment variables (the key in capitals, its section\n\
         as a prefix: `http.listen` is `STREAMFORGE_HTTP_LISTEN`), and the\n\
         defaults below. `streamforge config --default` prints every key with its\n\
         default as a commented TOML file to start from; `streamforge config`\n\
         prints the effective configuration, or why it is invalid. Durations are\n\
         written like `10s`, `500ms` or `6h`.\n",
    );
    for section in sections() {
        let title = if section.name.is_empty() {
            "Top level".to_owned()
        } else {
            format!("`[{}]`", section.name)
        };
        let _ = write!(out, "\n## {title}\n\n{}\n\n", section.description);
        table(&mut out, &section.keys, &flags, true);
        for key in section.keys.iter().filter(|k| !k.items.is_empty()) {
            let name = key.path.trim_end_matches("[]");
            let _ = write!(out, "\n### `[[{name}]]`\n\nEach entry of `{name}`:\n\n");
            table(&mut out, &key.items, &flags, false);
        }
    }
    out
}

fn table(out: &mut String, keys: &[Key], flags: &BTreeMap<String, String>, settable: bool) {
    if settable {
        out.push_str(
            "| key | type | default | environment / flag | meaning |\n|---|---|---|---|---|\n",
        );
    } else {
        out.push_str("| key | type | meaning |\n|---|---|---|\n");
    }
    for key in keys {
        let name = key.path.rsplit(['.', ']']).next().unwrap_or(&key.path);
        let description = key.description.replace('|', "\\|");
        if !settable {
            let _ = writeln!(out, "| `{name}` | {} | {description} |", key.kind);
            continue;
        }
        let default = key.default.as_ref().map_or_else(
            || "unset".to_owned(),
            |v| format!("`{}`", inline(v).replace('|', "\\|")),
        );
        let mut set_by = format!("`{}`", env_var(&key.path));
        if let Some(flag) = flags.get(&key.path) {
            let _ = write!(set_by, "<br>`{flag}`");
        }
        let _ = writeln!(
            out,
            "| `{name}` | {} | {default} | {set_by} | {description} |",
            key.kind
        );
    }
}

/// `streamforge config --default`: every key with its default, each
/// described in a comment; unset keys commented out.
pub fn default_toml() -> String {
    let mut out = String::from(
        "# StreamForge configuration: every key with its default value.\n\
         # Pass this file with --config; keys left out keep their defaults.\n\
         # Reference: docs/CONFIG.md (or `streamforge config --reference`).\n",
    );
    for section in sections() {
        if !section.name.is_empty() {
            let _ = write!(
                out,
                "\n{}[{}]\n",
                comment(&section.description),
                section.name
            );
        } else {
            out.push('\n');
        }
        for key in &section.keys {
            let name = key.path.rsplit('.').next().unwrap_or(&key.path);
            out.push_str(&comment(&key.description));
            match &key.default {
                Some(value) => {
                    let _ = writeln!(out, "{name} = {}", inline(value));
                }
                None => {
                    let _ = writeln!(out, "# {name} = (unset)");
                }
            }
        }
    }
    out
}

/// `text` as `#` lines of at most about 76 columns.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + word.len() > 76 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_in_docs_is_current() {
        let current = markdown();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFIG.md");
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == current,
            "docs/CONFIG.md is stale: run `cargo run -- config --reference > docs/CONFIG.md`"
        );
    }

    #[test]
    fn every_key_is_described_and_every_flag_names_a_key() {
        let all: Vec<Key> = sections().into_iter().flat_map(|s| s.keys).collect();
        let undescribed: Vec<&str> = all
            .iter()
            .chain(all.iter().flat_map(|k| &k.items))
            .filter(|k| k.description.trim().is_empty())
            .map(|k| k.path.as_str())
            .collect();
        assert!(
            undescribed.is_empty(),
            "keys without a doc comment: {undescribed:?}"
        );
        let paths: Vec<&str> = all.iter().map(|k| k.path.as_str()).collect();
        for key in flags().keys() {
            assert!(
                paths.contains(&key.as_str()),
                "a flag names {key}, no such key"
            );
        }
        assert!(paths.contains(&"live.reconnect_grace") && paths.contains(&"data_dir"));
    }

    #[test]
    fn the_default_file_loads_as_the_defaults() {
        let text = default_toml();
        let table: toml::Table = toml::from_str(&text).expect("valid TOML");
        let loaded: Config = toml::Value::Table(table)
            .try_into()
            .expect("a configuration");
        assert_eq!(loaded, Config::default());
    }
}
