//! The emulator's in-memory directory and mailboxes.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::auth::DeviceCode;
use crate::config::{AppConfig, EmulatorConfig, SkuConfig};
use crate::throttle::MailboxThrottle;
use crate::util::Dice;

pub(crate) struct World {
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) device_codes: HashMap<String, DeviceCode>,
    pub(crate) sessions: HashMap<String, UploadSession>,
    pub(crate) throttle: HashMap<(String, String), MailboxThrottle>,
    /// Per app: its mailbox requests in the current app window, across every mailbox.
    pub(crate) apps: HashMap<String, AppWindow>,
    pub(crate) dice: Dice,
    pub(crate) fault_dice: Dice,
    pub(crate) faults: crate::Faults,
    /// Writes carried out whose answer was then lost (504 or a dropped connection).
    pub(crate) after_write_faults: u64,
    next: u64,
}

/// One app's requests in its sliding app-wide window.
#[derive(Default)]
pub(crate) struct AppWindow {
    pub(crate) arrivals: std::collections::VecDeque<Instant>,
    /// The most requests the window held at once (counting only those since `since`).
    pub(crate) peak: u64,
    /// When the peak was last reset ([`crate::Emulator::reset_app_window_peak`]).
    pub(crate) since: Option<Instant>,
    /// Requests refused because the window was full.
    pub(crate) refusals: u64,
}

pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) domains: Vec<String>,
    pub(crate) apps: Vec<AppConfig>,
    pub(crate) users: Vec<User>,
    pub(crate) skus: Vec<SkuConfig>,
}

pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) props: Map<String, Value>,
    pub(crate) licenses: Vec<String>,
    pub(crate) mailbox: MailboxState,
}

pub(crate) enum MailboxState {
    None,
    ProvisionAt(Instant),
    Ready(Box<Mailbox>),
}

#[derive(Default)]
pub(crate) struct Mailbox {
    pub(crate) folders: Vec<Folder>,
    pub(crate) messages: BTreeMap<u64, Message>,
    /// Contacts and calendars ([`crate::pim`]).
    pub(crate) pim: Pim,
    /// The master category list ([`crate::categories`]).
    pub(crate) master_categories: Vec<crate::categories::MasterCategory>,
    /// Category creates refused with 409 because the name was taken.
    pub(crate) category_conflicts: u64,
}

/// A mailbox's contact folders, calendars, contacts and events.
#[derive(Default)]
pub(crate) struct Pim {
    /// Contact folders; the first is the default `Contacts` folder.
    pub(crate) contact_folders: Vec<PimFolder>,
    /// Calendars; the first is the default `Calendar`.
    pub(crate) calendars: Vec<PimFolder>,
    /// Microsoft To Do lists; the first is the default (`wellknownListName` `defaultList`).
    pub(crate) task_lists: Vec<PimFolder>,
    pub(crate) contacts: Vec<PimItem>,
    pub(crate) events: Vec<PimItem>,
    /// To Do tasks (their `linkedResources` among the properties).
    pub(crate) tasks: Vec<PimItem>,
    /// Meeting invitations the mailbox would have sent (one per attendee of a created event).
    pub(crate) invitations_sent: u64,
}

/// A contact folder or a calendar.
#[derive(Clone)]
pub(crate) struct PimFolder {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// A contact or an event (a single instance or a series master).
#[derive(Clone)]
pub(crate) struct PimItem {
    pub(crate) id: String,
    pub(crate) folder_id: String,
    pub(crate) props: Map<String, Value>,
    pub(crate) ext_props: Vec<(String, String)>,
    /// A contact's photo: media type and bytes.
    pub(crate) photo: Option<(String, Bytes)>,
    pub(crate) attachments: Vec<Attachment>,
    /// A series' deleted occurrences, by original start (Unix seconds).
    pub(crate) cancelled: Vec<i64>,
    /// A series' changed occurrences: original start (Unix seconds) and the PATCHed properties.
    pub(crate) exceptions: BTreeMap<i64, Map<String, Value>>,
}

#[derive(Clone)]
pub(crate) struct Folder {
    pub(crate) id: String,
    pub(crate) display_name: String,
    pub(crate) parent_id: Option<String>,
    pub(crate) well_known: Option<&'static str>,
}

#[derive(Clone)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) folder_id: String,
    pub(crate) props: Map<String, Value>,
    pub(crate) ext_props: Vec<(String, String)>,
    pub(crate) attachments: Vec<Attachment>,
}

#[derive(Clone)]
pub(crate) struct Attachment {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) content_type: String,
    pub(crate) content_id: Option<String>,
    pub(crate) is_inline: bool,
    pub(crate) data: Bytes,
}

pub(crate) struct UploadSession {
    pub(crate) app: String,
    pub(crate) user_id: String,
    pub(crate) message_id: String,
    pub(crate) auth_token: String,
    pub(crate) expires: Instant,
    pub(crate) attachment: Attachment,
    pub(crate) size: u64,
    pub(crate) received: Vec<u8>,
}

/// Well-known folders every mailbox has: (name, display name, visible under the root).
pub(crate) const WELL_KNOWN: [(&str, &str); 10] = [
    ("inbox", "Inbox"),
    ("sentitems", "Sent Items"),
    ("deleteditems", "Deleted Items"),
    ("junkemail", "Junk Email"),
    ("drafts", "Drafts"),
    ("archive", "Archive"),
    ("outbox", "Outbox"),
    ("conversationhistory", "Conversation History"),
    ("scheduled", "Scheduled"),
    ("clutter", "Clutter"),
];

impl World {
    pub(crate) fn new(config: &EmulatorConfig) -> Self {
        let mut world = World {
            tenants: Vec::new(),
            device_codes: HashMap::new(),
            sessions: HashMap::new(),
            throttle: HashMap::new(),
            apps: HashMap::new(),
            dice: Dice::new(0x5eed),
            fault_dice: Dice::new(config.faults.seed),
            faults: config.faults.clone(),
            after_write_faults: 0,
            next: 1,
        };
        for t in &config.tenants {
            let mut tenant = Tenant {
                id: t.id.clone(),
                domains: t.domains.clone(),
                apps: t.apps.clone(),
                users: Vec::new(),
                skus: t.skus.clone(),
            };
            for u in &t.users {
                let id = world.guid();
                let mut props = Map::new();
                props.insert("userPrincipalName".into(), json!(u.user_principal_name));
                props.insert("mail".into(), json!(u.user_principal_name));
                props.insert("displayName".into(), json!(u.display_name));
                props.insert("givenName".into(), Value::Null);
                props.insert("surname".into(), Value::Null);
                props.insert("accountEnabled".into(), json!(true));
                props.insert("usageLocation".into(), json!(u.usage_location));
                let mut proxies = vec![format!("SMTP:{}", u.user_principal_name)];
                proxies.extend(u.proxy_addresses.iter().cloned());
                props.insert("proxyAddresses".into(), json!(proxies));
                props.insert(
                    "mailNickname".into(),
                    json!(u.user_principal_name.split('@').next().unwrap_or_default()),
                );
                let (licenses, mailbox) = if u.mailbox {
                    let sku = t.skus.first().map(|s| s.sku_id.clone());
                    (
                        sku.into_iter().collect(),
                        MailboxState::Ready(Box::new(world.new_mailbox())),
                    )
                } else {
                    (Vec::new(), MailboxState::None)
                };
                tenant.users.push(User {
                    id,
                    props,
                    licenses,
                    mailbox,
                });
            }
            world.tenants.push(tenant);
        }
        world
    }

    /// A fresh GUID-shaped id.
    pub(crate) fn guid(&mut self) -> String {
        let a = self.dice.next_u64();
        let b = self.dice.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    /// A fresh Exchange-style item id.
    pub(crate) fn item_id(&mut self, prefix: &str) -> String {
        self.next += 1;
        let r = self.dice.next_u64();
        format!("{prefix}AAMkAGI2{:010x}{:016x}", self.next, r)
    }

    pub(crate) fn seq(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub(crate) fn new_mailbox(&mut self) -> Mailbox {
        let root = Folder {
            id: self.item_id("F"),
            display_name: "Top of Information Store".into(),
            parent_id: None,
            well_known: Some("msgfolderroot"),
        };
        let root_id = root.id.clone();
        let pim = Pim {
            contact_folders: vec![PimFolder {
                id: self.item_id("C"),
                name: "Contacts".into(),
            }],
            calendars: vec![PimFolder {
                id: self.item_id("K"),
                name: "Calendar".into(),
            }],
            task_lists: vec![PimFolder {
                id: self.item_id("T"),
                name: "Tasks".into(),
            }],
            ..Pim::default()
        };
        let master_categories = crate::categories::DEFAULTS
            .iter()
            .map(|(name, color)| crate::categories::MasterCategory {
                id: self.guid(),
                display_name: (*name).into(),
                color: (*color).into(),
            })
            .collect();
        let mut mb = Mailbox {
            folders: vec![root],
            messages: BTreeMap::new(),
            pim,
            master_categories,
            category_conflicts: 0,
        };
        for (name, display) in WELL_KNOWN {
            let id = self.item_id("F");
            mb.folders.push(Folder {
                id,
                display_name: display.into(),
                parent_id: Some(root_id.clone()),
                well_known: Some(name),
            });
        }
        mb
    }

    /// Creates the mailboxes whose provisioning delay has passed.
    pub(crate) fn provision_due(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (ti, t) in self.tenants.iter().enumerate() {
            for (ui, u) in t.users.iter().enumerate() {
                if matches!(u.mailbox, MailboxState::ProvisionAt(at) if at <= now) {
                    due.push((ti, ui));
                }
            }
        }
        for (ti, ui) in due {
            let mb = self.new_mailbox();
            self.tenants[ti].users[ui].mailbox = MailboxState::Ready(Box::new(mb));
        }
    }

    /// The tenant by id or verified domain.
    pub(crate) fn tenant(&self, reference: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| {
            t.id.eq_ignore_ascii_case(reference)
                || t.domains.iter().any(|d| d.eq_ignore_ascii_case(reference))
                || (self.tenants.len() == 1 && reference == "organizations")
        })
    }

    /// Finds a user in any tenant by id or UPN (for the inspection API).
    pub(crate) fn any_user(&self, reference: &str) -> Option<&User> {
        self.tenants
            .iter()
            .flat_map(|t| t.users.iter())
            .find(|u| u.matches(reference))
    }

    /// [`World::any_user`], mutable.
    pub(crate) fn any_user_mut(&mut self, reference: &str) -> Option<&mut User> {
        self.tenants
            .iter_mut()
            .flat_map(|t| t.users.iter_mut())
            .find(|u| u.matches(reference))
    }
}

impl Tenant {
    pub(crate) fn user_index(&self, reference: &str) -> Option<usize> {
        self.users.iter().position(|u| u.matches(reference))
    }
}

impl User {
    pub(crate) fn matches(&self, reference: &str) -> bool {
        self.id.eq_ignore_ascii_case(reference)
            || self.props["userPrincipalName"]
                .as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(reference))
    }

    pub(crate) fn upn(&self) -> String {
        self.props["userPrincipalName"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The mailbox, if provisioned (call [`World::provision_due`] first).
    pub(crate) fn mailbox_mut(&mut self) -> Option<&mut Mailbox> {
        match &mut self.mailbox {
            MailboxState::Ready(mb) => Some(mb),
            _ => None,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut v = self.props.clone();
        v.insert("id".into(), json!(self.id));
        v.insert(
            "assignedLicenses".into(),
            Value::Array(
                self.licenses
                    .iter()
                    .map(|s| json!({"skuId": s, "disabledPlans": []}))
                    .collect(),
            ),
        );
        Value::Object(v)
    }
}

impl Mailbox {
    /// A folder by id or well-known name (case-insensitive).
    pub(crate) fn folder(&self, reference: &str) -> Option<&Folder> {
        self.folders.iter().find(|f| {
            f.id == reference
                || f.well_known
                    .is_some_and(|w| w.eq_ignore_ascii_case(reference))
        })
    }

    pub(crate) fn folder_json(&self, f: &Folder) -> Value {
        let children = self
            .folders
            .iter()
            .filter(|c| c.parent_id.as_deref() == Some(&f.id))
            .count();
        let total = self
            .messages
            .values()
            .filter(|m| m.folder_id == f.id)
            .count();
        let unread = self
            .messages
            .values()
            .filter(|m| m.folder_id == f.id && m.props.get("isRead") == Some(&json!(false)))
            .count();
        json!({
            "id": f.id,
            "displayName": f.display_name,
            "parentFolderId": f.parent_id,
            "childFolderCount": children,
            "unreadItemCount": unread,
            "totalItemCount": total,
            "sizeInBytes": 0,
            "isHidden": false,
        })
    }

    /// Full path of a folder (`Inbox/Receipts`) for the inspection API.
    pub(crate) fn folder_path(&self, id: &str) -> String {
        let mut names = Vec::new();
        let mut cur = self.folders.iter().find(|f| f.id == id);
        while let Some(f) = cur {
            if f.parent_id.is_none() {
                break;
            }
            names.push(f.display_name.clone());
            cur = f
                .parent_id
                .as_ref()
                .and_then(|p| self.folders.iter().find(|x| &x.id == p));
        }
        names.reverse();
        names.join("/")
    }
}
