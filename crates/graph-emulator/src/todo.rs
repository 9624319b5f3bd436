//! Microsoft To Do: `/users/{id}/todo/lists` and their `tasks`.
//!
//! Follows Microsoft Graph v1.0 ("todoTaskList", "Create todoTaskList", "Create todoTask",
//! "linkedResource"; application permissions `Tasks.ReadWrite.All` / `Tasks.Read.All` since
//! February 2023): every mailbox has its default list (`wellknownListName` `defaultList`);
//! list names need not be unique; a task may be created with `linkedResources` (each given an
//! id), which a GET returns only with `$expand=linkedResources`; `dueDateTime`,
//! `reminderDateTime`, `startDateTime` and `completedDateTime` must carry a supported time zone.

use serde_json::{Map, Value, json};

use crate::mail::{bad, filtered_page, item_not_found, select};
use crate::pim::{folder_name, item_op, new_item, unsupported};
use crate::recurrence::date_time_zone;
use crate::server::Req;
use crate::util::Resp;
use crate::world::{Pim, PimFolder, PimItem};

fn list_json(l: &PimFolder, default: bool) -> Value {
    json!({"id": l.id, "displayName": l.name, "isOwner": true, "isShared": false,
        "wellknownListName": if default { "defaultList" } else { "none" }})
}

fn task_json(t: &PimItem) -> Map<String, Value> {
    let mut obj = t.props.clone();
    obj.remove("linkedResources");
    obj.insert("id".into(), json!(t.id));
    obj
}

fn render_task(t: &PimItem, req: &Req) -> Value {
    let mut obj = select(task_json(t), &req.query);
    if req
        .query
        .get("$expand")
        .is_some_and(|e| e.starts_with("linkedResources"))
    {
        obj.insert(
            "linkedResources".into(),
            t.props
                .get("linkedResources")
                .cloned()
                .unwrap_or_else(|| json!([])),
        );
    }
    Value::Object(obj)
}

fn check_task(props: &Map<String, Value>) -> Result<(), Resp> {
    for what in [
        "dueDateTime",
        "reminderDateTime",
        "startDateTime",
        "completedDateTime",
    ] {
        if let Some(v) = props.get(what).filter(|v| !v.is_null())
            && let Err((code, msg)) = date_time_zone(v, what)
        {
            return Err(bad(code, &msg));
        }
    }
    Ok(())
}

/// Handles `/users/{id}/todo/{rest...}`; `new_id` is a fresh id for whatever is created.
pub(crate) fn todo_op(pim: &mut Pim, new_id: String, r: &[&str], req: &Req) -> Resp {
    let m = req.method.as_str();
    let list_index = |pim: &Pim, id: &str| pim.task_lists.iter().position(|l| l.id == id);
    match (m, r) {
        ("GET", ["lists"]) => {
            let all = pim
                .task_lists
                .iter()
                .enumerate()
                .map(|(i, l)| list_json(l, i == 0))
                .collect();
            crate::pim::list(all, req)
        }
        ("POST", ["lists"]) => {
            let name = match folder_name(req, "displayName") {
                Ok(n) => n,
                Err(e) => return e,
            };
            pim.task_lists.push(PimFolder { id: new_id, name });
            let l = &pim.task_lists[pim.task_lists.len() - 1];
            Resp::json(201, &list_json(l, false))
        }
        ("GET", ["lists", l]) => match list_index(pim, l) {
            Some(i) => Resp::json(200, &list_json(&pim.task_lists[i], i == 0)),
            None => item_not_found(),
        },
        (_, ["lists", l, "tasks"]) => {
            let Some(i) = list_index(pim, l) else {
                return item_not_found();
            };
            let list_id = pim.task_lists[i].id.clone();
            match m {
                "GET" => filtered_page(
                    pim.tasks.iter().filter(|t| t.folder_id == list_id),
                    |t| (&t.props, &t.ext_props),
                    |t| render_task(t, req),
                    req,
                ),
                "POST" => {
                    let mut item = match new_item(list_id, new_id, req) {
                        Ok(i) => i,
                        Err(e) => return e,
                    };
                    if let Err(e) = check_task(&item.props) {
                        return e;
                    }
                    if let Some(Value::Array(links)) = item.props.get_mut("linkedResources") {
                        for (n, link) in links.iter_mut().enumerate() {
                            if let Some(o) = link.as_object_mut() {
                                o.insert("id".into(), json!(format!("{}L{n}", item.id)));
                            }
                        }
                    }
                    item.props.entry("status").or_insert(json!("notStarted"));
                    item.props.entry("importance").or_insert(json!("normal"));
                    let out = render_task(&item, req);
                    pim.tasks.push(item);
                    Resp::json(201, &out)
                }
                _ => unsupported(req),
            }
        }
        ("GET", ["lists", l, "tasks", t, "linkedResources"]) => {
            match pim.tasks.iter().find(|x| x.id == *t && x.folder_id == *l) {
                Some(task) => Resp::json(
                    200,
                    &json!({"value": task.props.get("linkedResources").cloned().unwrap_or_else(|| json!([]))}),
                ),
                None => item_not_found(),
            }
        }
        (_, ["lists", l, "tasks", t]) => {
            if list_index(pim, l).is_none() {
                return item_not_found();
            }
            if m == "GET" {
                return match pim.tasks.iter().find(|x| x.id == *t) {
                    Some(task) => Resp::json(200, &render_task(task, req)),
                    None => item_not_found(),
                };
            }
            item_op(&mut pim.tasks, t, req, task_json, Some(check_task))
        }
        _ => unsupported(req),
    }
}
