//! The mailbox's master category list: `/users/{id}/outlook/masterCategories`.
//!
//! Follows Microsoft Graph v1.0 ("List Outlook categories", "Create Outlook category", "Delete
//! outlookCategory"): an `outlookCategory` is `{id, displayName, color}`; `color` is `none` or
//! `preset0` to `preset24` (anything else answers 400); `displayName` is required and unique in
//! the mailbox, compared case-insensitively. The reference names no answer for a duplicate
//! name: the emulator answers 409 `ErrorDuplicateCategory`, an assumption (it matches how a
//! duplicate folder name is refused). An absent `color` is stored as `none`. A new mailbox
//! holds Outlook's six default categories (`Red category` … `Purple category`).

use serde_json::{Value, json};

use crate::mail::{bad, body_json, item_not_found};
use crate::server::Req;
use crate::util::Resp;
use crate::world::Mailbox;

/// The first path segment (after `/users/{id}/`) this module answers.
pub(crate) const KIND: &str = "outlook";

/// One entry of the master category list.
#[derive(Clone)]
pub(crate) struct MasterCategory {
    pub(crate) id: String,
    pub(crate) display_name: String,
    pub(crate) color: String,
}

/// The categories a new Exchange Online mailbox starts with (name, colour).
pub(crate) const DEFAULTS: [(&str, &str); 6] = [
    ("Red category", "preset0"),
    ("Orange category", "preset1"),
    ("Yellow category", "preset3"),
    ("Green category", "preset4"),
    ("Blue category", "preset7"),
    ("Purple category", "preset8"),
];

/// Whether `color` is a value Graph's `categoryColor` takes.
pub(crate) fn valid_color(color: &str) -> bool {
    color == "none" || (0..=24).any(|n| color == format!("preset{n}"))
}

fn category_json(c: &MasterCategory) -> Value {
    json!({"id": c.id, "displayName": c.display_name, "color": c.color})
}

/// Adds a category unless one of that name (any case) exists; false when it does.
pub(crate) fn add(mb: &mut Mailbox, id: String, name: &str, color: &str) -> bool {
    let taken = mb
        .master_categories
        .iter()
        .any(|c| c.display_name.to_lowercase() == name.to_lowercase());
    if !taken {
        mb.master_categories.push(MasterCategory {
            id,
            display_name: name.to_owned(),
            color: color.to_owned(),
        });
    }
    !taken
}

/// Handles `/users/{id}/outlook/...`; `new_id` is the id a created category gets.
pub(crate) fn op(mb: &mut Mailbox, new_id: String, rest: &[&str], req: &Req) -> Resp {
    match (req.method.as_str(), rest) {
        ("GET", ["outlook", "masterCategories"]) => {
            let values: Vec<Value> = mb.master_categories.iter().map(category_json).collect();
            Resp::json(
                200,
                &json!({"@odata.context": format!("{}/v1.0/$metadata#outlookCategories", req.base_url), "value": values}),
            )
        }
        ("POST", ["outlook", "masterCategories"]) => {
            let body = match body_json(req) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let name = body["displayName"].as_str().unwrap_or_default();
            if name.trim().is_empty() {
                return bad(
                    "ErrorInvalidRequest",
                    "The displayName property of an outlookCategory is required.",
                );
            }
            let color = match &body["color"] {
                Value::Null => "none",
                Value::String(c) if valid_color(c) => c.as_str(),
                other => {
                    return bad(
                        "ErrorInvalidRequest",
                        &format!(
                            "Invalid color {other}: a category's color is none or preset0 to preset24."
                        ),
                    );
                }
            };
            if !add(mb, new_id, name, color) {
                mb.category_conflicts += 1;
                return Resp::graph_error(
                    409,
                    "ErrorDuplicateCategory",
                    &format!("A category named '{name}' already exists in the master list."),
                );
            }
            let created = mb.master_categories.last().map(category_json);
            Resp::json(201, &created.unwrap_or_default())
        }
        ("GET", ["outlook", "masterCategories", id]) => {
            match mb.master_categories.iter().find(|c| c.id == *id) {
                Some(c) => Resp::json(200, &category_json(c)),
                None => item_not_found(),
            }
        }
        ("DELETE", ["outlook", "masterCategories", id]) => {
            let before = mb.master_categories.len();
            mb.master_categories.retain(|c| c.id != *id);
            if mb.master_categories.len() == before {
                item_not_found()
            } else {
                Resp::empty(204)
            }
        }
        _ => bad(
            "BadRequest",
            &format!("Unsupported request: {} {}", req.method, req.path),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::valid_color;

    #[test]
    fn colours_are_none_or_preset_0_to_24() {
        for ok in ["none", "preset0", "preset9", "preset24"] {
            assert!(valid_color(ok), "{ok}");
        }
        for no in [
            "None", "preset25", "preset", "preset-1", "preset+1", "preset01", "red", "",
        ] {
            assert!(!valid_color(no), "{no}");
        }
    }
}
