//! `${env:VAR}` and `${env:VAR:-default}` in config values, as in the OpenTelemetry Collector.
//! `$$` writes a literal `$`. A value that is exactly one reference takes the type of what it
//! expands to (`port: ${env:PORT}` is a number); a reference inside a longer string expands as
//! text. An unset variable without a default expands to the empty string, as in the Collector.

use serde_yaml::Value;

use super::Problem;

/// Expands every string scalar under `value`. Problems carry the path of the offending key.
pub fn expand(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    match value {
        Value::String(s) => {
            if !s.contains('$') {
                return;
            }
            match expand_str(s, lookup) {
                Ok((text, whole)) => {
                    *value = if whole {
                        scalar(&text)
                    } else {
                        Value::String(text)
                    };
                }
                Err(message) => problems.push(Problem::new(path, message)),
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                expand(v, &super::join(path, &key), lookup, problems);
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                expand(v, &format!("{path}[{i}]"), lookup, problems);
            }
        }
        Value::Tagged(t) => expand(&mut t.value, path, lookup, problems),
        _ => {}
    }
}

/// A whole-value expansion parsed as a YAML scalar (number, bool), else kept as a string. Text
/// a number would not write back the same (`007`, `1.50`, `+5`, `1e3`) stays text: a secret or
/// an id made of digits keeps every character.
fn scalar(text: &str) -> Value {
    match serde_yaml::from_str::<Value>(text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_)))
            if serde_yaml::to_string(&v).is_ok_and(|back| back.trim() == text) =>
        {
            v
        }
        _ => Value::String(text.to_owned()),
    }
}

/// Returns the expanded text and whether the input was exactly one reference.
fn expand_str(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut references = 0;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated reference in {s:?}"))?;
            let reference = &body[..end];
            let spec = reference.strip_prefix("env:").ok_or_else(|| {
                format!("unsupported reference ${{{reference}}}: only ${{env:VAR}} is supported")
            })?;
            let (name, default) = match spec.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (spec, None),
            };
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            match lookup(name).filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(&v),
                None => out.push_str(default.unwrap_or_default()),
            }
            references += 1;
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    let whole = references == 1 && s.starts_with("${") && s.ends_with('}');
    Ok((out, whole))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("4317".into()),
            "HOST" => Some("0.0.0.0".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(yaml: &str) -> (Value, Vec<Problem>) {
        let mut v: Value = serde_yaml::from_str(yaml).expect("yaml");
        let mut problems = Vec::new();
        expand(&mut v, "", &lookup, &mut problems);
        (v, problems)
    }

    #[test]
    fn references_expand_with_defaults_types_and_escapes() {
        let (v, problems) = run(
            "a: ${env:PORT}\nb: ${env:HOST}:${env:PORT}\nc: ${env:MISSING:-fallback}\nd: ${env:EMPTY:-x}\ne: cost $$5\nf: ${env:MISSING}\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(v["a"], Value::Number(4317.into()));
        assert_eq!(v["b"], Value::String("0.0.0.0:4317".into()));
        assert_eq!(v["c"], Value::String("fallback".into()));
        assert_eq!(v["d"], Value::String("x".into()));
        assert_eq!(v["e"], Value::String("cost $5".into()));
        assert_eq!(v["f"], Value::String(String::new()));
    }

    #[test]
    fn bad_references_are_reported_with_their_path() {
        let (_, problems) = run("x:\n  y: [ok, \"${file:/etc/passwd}\"]\n  z: ${env:A\n");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["x.y[1]", "x.z"]);
        assert!(problems[0].message.contains("only ${env:VAR}"));
    }
}
