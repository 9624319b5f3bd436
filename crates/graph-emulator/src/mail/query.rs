//! OData query options: `$filter` (the clauses the emulator understands), `$select`, and
//! `$top` / `$skip` paging with `@odata.nextLink`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::bad;
use crate::server::Req;
use crate::util::{Resp, pct_encode};

/// A parsed `$filter` clause.
enum Filter {
    Eq(String, String),
    StartsWith(String, String),
    Ext(String, String),
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

fn parse_filter(f: &str) -> Result<Filter, Resp> {
    let invalid = || bad("BadRequest", &format!("Invalid filter clause: {f}"));
    let f = f.trim();
    // OData lambda operators are case-insensitive in Graph's parser (`any(` and `Any(`).
    const EXT_ANY: &str = "singleValueExtendedProperties/any(";
    if let Some(inner) = f
        .get(..EXT_ANY.len())
        .filter(|p| p.eq_ignore_ascii_case(EXT_ANY))
        .and_then(|_| f[EXT_ANY.len()..].strip_suffix(')'))
    {
        let (_, cond) = inner.split_once(':').ok_or_else(invalid)?;
        let (id_part, value_part) = cond.split_once(" and ").ok_or_else(invalid)?;
        let id = unquote(id_part.split_once(" eq ").ok_or_else(invalid)?.1).ok_or_else(invalid)?;
        let value =
            unquote(value_part.split_once(" eq ").ok_or_else(invalid)?.1).ok_or_else(invalid)?;
        return Ok(Filter::Ext(id, value));
    }
    if let Some(inner) = f
        .strip_prefix("startswith(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (prop, lit) = inner.split_once(',').ok_or_else(invalid)?;
        return Ok(Filter::StartsWith(
            prop.trim().to_string(),
            unquote(lit).ok_or_else(invalid)?,
        ));
    }
    let (prop, lit) = f.split_once(" eq ").ok_or_else(invalid)?;
    let lit = lit.trim();
    let value = unquote(lit).unwrap_or_else(|| lit.to_string());
    Ok(Filter::Eq(prop.trim().to_string(), value))
}

fn value_matches(v: Option<&Value>, lit: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == lit,
        Some(Value::Bool(b)) => lit == if *b { "true" } else { "false" },
        Some(Value::Number(n)) => n.to_string() == lit,
        _ => false,
    }
}

/// Applies a `$filter` to a JSON object (users or messages).
pub(crate) fn filter_matches(
    filter: &Option<String>,
    obj: &Map<String, Value>,
    ext: &[(String, String)],
) -> Result<bool, Resp> {
    let Some(f) = filter else { return Ok(true) };
    Ok(match parse_filter(f)? {
        Filter::Eq(p, lit) => value_matches(obj.get(&p), &lit),
        Filter::StartsWith(p, lit) => obj
            .get(&p)
            .and_then(Value::as_str)
            .is_some_and(|s| s.to_lowercase().starts_with(&lit.to_lowercase())),
        Filter::Ext(id, value) => ext
            .iter()
            .any(|(i, v)| i.eq_ignore_ascii_case(&id) && *v == value),
    })
}

/// Applies `$expand=singleValueExtendedProperties($filter=id eq '…')` to a rendered item: the
/// properties whose ids the expansion names (all when it names none).
pub(crate) fn expand_ext_props(
    obj: &mut Map<String, Value>,
    ext: &[(String, String)],
    expand: &str,
) {
    let ids: Vec<&str> = expand
        .split('\'')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    let props: Vec<Value> = ext
        .iter()
        .filter(|(id, _)| ids.is_empty() || ids.iter().any(|w| w.eq_ignore_ascii_case(id)))
        .map(|(id, v)| json!({"id": id, "value": v}))
        .collect();
    obj.insert("singleValueExtendedProperties".into(), Value::Array(props));
}

/// Projects `$select`.
pub(crate) fn select(
    obj: Map<String, Value>,
    query: &HashMap<String, String>,
) -> Map<String, Value> {
    let Some(sel) = query.get("$select") else {
        return obj;
    };
    let wanted: Vec<&str> = sel.split(',').map(str::trim).collect();
    obj.into_iter()
        .filter(|(k, _)| k == "id" || wanted.iter().any(|w| w.eq_ignore_ascii_case(k)))
        .collect()
}

pub(crate) fn paged(
    values: Vec<Value>,
    total: usize,
    skip: usize,
    top: usize,
    req: &Req,
    count: bool,
) -> Resp {
    let mut out =
        json!({"@odata.context": format!("{}/v1.0/$metadata", req.base_url), "value": values});
    if count {
        out["@odata.count"] = json!(total);
    }
    if skip + top < total {
        let mut q: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k.as_str() != "$skip" && k.as_str() != "$skiptoken")
            .map(|(k, v)| format!("{}={}", pct_encode(k), pct_encode(v)))
            .collect();
        q.sort();
        q.push(format!("%24skip={}", skip + top));
        out["@odata.nextLink"] =
            json!(format!("{}/v1.0{}?{}", req.base_url, req.path, q.join("&")));
    }
    Resp::json(200, &out)
}

pub(crate) fn top_skip(
    req: &Req,
    default_top: usize,
    max_top: usize,
) -> Result<(usize, usize), Resp> {
    let top = match req.query.get("$top") {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| bad("BadRequest", "Invalid $top value."))?,
        None => default_top,
    };
    if top == 0 || top > max_top {
        return Err(bad(
            "BadRequest",
            &format!("The value of $top must be between 1 and {max_top}."),
        ));
    }
    let skip = req
        .query
        .get("$skip")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((top, skip))
}

/// Answers a list request: the items `$filter` keeps, the page `$top` / `$skip` ask for (10 by
/// default, at most 1,000), rendered, with `@odata.nextLink` and `$count` when asked.
pub(crate) fn filtered_page<'a, T: 'a>(
    items: impl Iterator<Item = &'a T>,
    fields: impl Fn(&T) -> (&Map<String, Value>, &[(String, String)]),
    render: impl Fn(&T) -> Value,
    req: &Req,
) -> Resp {
    let (top, skip) = match top_skip(req, 10, 1000) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let filter = req.query.get("$filter").cloned();
    let mut matching = Vec::new();
    for item in items {
        let (props, ext) = fields(item);
        match filter_matches(&filter, props, ext) {
            Ok(true) => matching.push(item),
            Ok(false) => {}
            Err(e) => return e,
        }
    }
    let values = matching
        .iter()
        .skip(skip)
        .take(top)
        .map(|i| render(i))
        .collect();
    paged(
        values,
        matching.len(),
        skip,
        top,
        req,
        req.query.get("$count").is_some_and(|c| c == "true"),
    )
}
