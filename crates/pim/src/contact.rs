//! vCard -> Graph `contact` (Graph v1.0 "contact resource type": givenName, surname,
//! middleName, title (the honorific), generation (the suffix), nickName, displayName,
//! companyName, department, jobTitle, profession, emailAddresses, businessPhones, homePhones,
//! mobilePhone, homeAddress/businessAddress/otherAddress (physicalAddress: street, city, state,
//! postalCode, countryOrRegion), birthday (DateTimeOffset), personalNotes, categories,
//! businessHomePage, imAddresses, spouseName, children, yomiGivenName, yomiSurname, yomiCompanyName,
//! singleValueExtendedProperties).

use calcard::Entry;
use calcard::common::PartialDateTime;
use calcard::vcard::{
    VCardEntry, VCardParameterName, VCardParameterValue, VCardProperty, VCardType, VCardValue,
};
use serde_json::{Map, Value, json};

use crate::split::{Block, truncate};
use crate::{Contact, Photo, Result, malformed};

/// Outlook contacts hold three e-mail addresses (Email1..Email3); Graph's `emailAddresses`
/// carries those three slots.
const MAX_EMAILS: usize = 3;
/// Exchange contact items have two business (Business, Business2) and two home (Home, Home2)
/// phone slots, one mobile; `businessPhones` / `homePhones` map onto those.
const MAX_PHONES: usize = 2;
/// Exchange contact items have three IM address slots (IMAddress1..3) behind `imAddresses`.
const MAX_IM: usize = 3;

pub(crate) fn convert(label: &str, block: &Block) -> Result<Contact> {
    let text = block.text();
    let card = match calcard::Parser::new(&text).entry() {
        Entry::VCard(card) => card,
        other => {
            return Err(malformed(
                label,
                block.start(),
                format!("calcard could not read the vCard: {}", describe(&other)),
            ));
        }
    };
    let mut g = Map::new();
    let mut not = Vec::new();
    let mut emails = Vec::new();
    let mut business = Vec::new();
    let mut home = Vec::new();
    let mut mobile: Option<String> = None;
    let mut ims = Vec::new();
    let mut categories = Vec::new();
    let mut photo = None;
    let mut uid = None;
    let mut notes: Vec<String> = Vec::new();
    let mut addr_seen = [false; 3];
    let mut extended = Vec::new();
    let mut children: Vec<String> = Vec::new();

    for e in &card.entries {
        let texts = texts(e);
        let first = texts.first().cloned().unwrap_or_default();
        match &e.name {
            VCardProperty::Version | VCardProperty::Prodid | VCardProperty::Rev => {}
            VCardProperty::Uid => uid = Some(first),
            VCardProperty::Fn => set(&mut g, "displayName", &first),
            VCardProperty::N => {
                let comp = |i: usize| texts.get(i).cloned().unwrap_or_default();
                set(&mut g, "surname", &comp(0));
                set(&mut g, "givenName", &comp(1));
                set(&mut g, "middleName", &comp(2));
                set(&mut g, "title", &comp(3));
                set(&mut g, "generation", &comp(4));
            }
            VCardProperty::Nickname => set(&mut g, "nickName", &texts.join(", ")),
            VCardProperty::Org => {
                set(&mut g, "companyName", &first);
                set(
                    &mut g,
                    "department",
                    &texts.get(1..).map(|t| t.join(", ")).unwrap_or_default(),
                );
            }
            VCardProperty::Title => set(&mut g, "jobTitle", &first),
            VCardProperty::Role => set(&mut g, "profession", &first),
            VCardProperty::Email => {
                if emails.len() < MAX_EMAILS {
                    emails.push(json!({ "address": first }));
                    // Graph's emailAddress is a name and an address: the vCard type is lost.
                    let kinds = type_names(e);
                    if !kinds.is_empty() {
                        not.push(format!(
                            "EMAIL ({first}) type {kinds}: Graph e-mail addresses have no type"
                        ));
                    }
                } else {
                    not.push(format!(
                        "EMAIL #{} ({first}): Graph keeps three e-mail addresses",
                        emails.len() + count_extra(&not, "EMAIL #") + 1
                    ));
                }
            }
            VCardProperty::Tel => {
                let number = first.strip_prefix("tel:").unwrap_or(&first).to_string();
                let types = types(e);
                let has = |t: &VCardType| types.contains(t);
                if has(&VCardType::Fax)
                    || has(&VCardType::Pager)
                    || has(&VCardType::Textphone)
                    || has(&VCardType::Video)
                {
                    not.push(format!("TEL ({number}, {}): Graph v1.0 contacts have no fax, pager or other phone kinds", type_names(e)));
                } else if has(&VCardType::Cell) {
                    if mobile.is_none() {
                        mobile = Some(number);
                    } else {
                        not.push(format!(
                            "TEL ({number}, cell): Graph keeps one mobile phone"
                        ));
                    }
                } else if has(&VCardType::Home) {
                    push_limited(&mut home, number, "home", &mut not);
                } else {
                    // work, voice or no type: a business phone.
                    push_limited(&mut business, number, "business", &mut not);
                }
            }
            VCardProperty::Adr => {
                let ty = types(e);
                let (slot, key) = if ty.contains(&VCardType::Home) {
                    (0, "homeAddress")
                } else if ty.contains(&VCardType::Work) {
                    (1, "businessAddress")
                } else {
                    (2, "otherAddress")
                };
                let comp = |i: usize| texts.get(i).cloned().unwrap_or_default();
                let street: Vec<String> = [comp(0), comp(1), comp(2)]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect();
                if addr_seen[slot] {
                    not.push(format!(
                        "ADR ({}): Graph keeps one {key}",
                        truncate(&texts.join(", "), 60)
                    ));
                    continue;
                }
                addr_seen[slot] = true;
                let mut a = Map::new();
                set(&mut a, "street", &street.join("\n"));
                set(&mut a, "city", &comp(3));
                set(&mut a, "state", &comp(4));
                set(&mut a, "postalCode", &comp(5));
                set(&mut a, "countryOrRegion", &comp(6));
                g.insert(key.into(), Value::Object(a));
            }
            VCardProperty::Bday => match date(e) {
                // Graph `birthday` is a DateTimeOffset; a date is written at midnight UTC.
                Some(d) => {
                    g.insert("birthday".into(), json!(format!("{d}T00:00:00Z")));
                }
                None => not.push(format!(
                    "BDAY ({first}): not a full date; Graph's birthday needs year, month and day"
                )),
            },
            VCardProperty::Anniversary => match date(e) {
                // No anniversary in the v1.0 contact; MAPI PidTagWeddingAnniversary
                // (0x3A41, PT_SYSTIME, [MS-OXOCNTC] 2.2.1.5.4) carries it as an extended property.
                Some(d) => extended
                    .push(json!({ "id": "SystemTime 0x3A41", "value": format!("{d}T00:00:00Z") })),
                None => not.push(format!("ANNIVERSARY ({first}): not a full date")),
            },
            VCardProperty::Related => {
                // Graph contact: spouseName (one) and children (a list of names).
                let ty = types(e);
                let name = first.clone();
                if ty.contains(&VCardType::Spouse) && !g.contains_key("spouseName") {
                    set(&mut g, "spouseName", &name);
                } else if ty.contains(&VCardType::Child) {
                    children.push(name);
                } else {
                    not.push(format!(
                        "RELATED ({}, {}): Graph keeps a spouse's and children's names only",
                        truncate(&name, 60),
                        type_names(e)
                    ));
                }
            }
            VCardProperty::Note => notes.push(first),
            VCardProperty::Categories => {
                categories.extend(texts.iter().filter(|t| !t.is_empty()).cloned())
            }
            VCardProperty::Url => {
                if g.contains_key("businessHomePage") {
                    not.push(format!(
                        "URL ({first}): Graph keeps one web page (businessHomePage)"
                    ));
                } else {
                    set(&mut g, "businessHomePage", &first);
                }
            }
            VCardProperty::Impp => {
                if ims.len() < MAX_IM {
                    ims.push(first);
                } else {
                    not.push(format!("IMPP ({first}): Graph keeps three IM addresses"));
                }
            }
            VCardProperty::Photo => match e.values.first() {
                Some(VCardValue::Binary(data)) if photo.is_none() => {
                    photo = Some(Photo {
                        content_type: data
                            .content_type
                            .clone()
                            .unwrap_or_else(|| sniff(&data.data).to_string()),
                        bytes: data.data.clone(),
                    });
                }
                Some(VCardValue::Binary(_)) => {
                    not.push("PHOTO: a second photo; Graph keeps one".to_string())
                }
                _ => not.push(format!(
                    "PHOTO ({}): a link, not an inline image; the tool does not download it",
                    truncate(&first, 60)
                )),
            },
            // Apple's phonetic-name extensions -> Graph's yomi (phonetic) fields.
            VCardProperty::Other(n) if n.eq_ignore_ascii_case("X-PHONETIC-FIRST-NAME") => {
                set(&mut g, "yomiGivenName", &first)
            }
            VCardProperty::Other(n) if n.eq_ignore_ascii_case("X-PHONETIC-LAST-NAME") => {
                set(&mut g, "yomiSurname", &first)
            }
            VCardProperty::Other(n) if n.eq_ignore_ascii_case("X-PHONETIC-ORG") => {
                set(&mut g, "yomiCompanyName", &first)
            }
            other => {
                let name = match other {
                    VCardProperty::Other(n) => n.to_ascii_uppercase(),
                    _ => prop_label(other),
                };
                let shown = texts.join(";");
                not.push(format!(
                    "{name} ({}): Graph contacts have no such field",
                    truncate(&shown, 60)
                ));
            }
        }
    }
    if !emails.is_empty() {
        g.insert("emailAddresses".into(), Value::Array(emails));
    }
    if !business.is_empty() {
        g.insert("businessPhones".into(), json!(business));
    }
    if !home.is_empty() {
        g.insert("homePhones".into(), json!(home));
    }
    if let Some(m) = mobile {
        g.insert("mobilePhone".into(), json!(m));
    }
    if !children.is_empty() {
        g.insert("children".into(), json!(children));
    }
    if !ims.is_empty() {
        g.insert("imAddresses".into(), json!(ims));
    }
    if !categories.is_empty() {
        g.insert("categories".into(), json!(categories));
    }
    if !notes.is_empty() {
        g.insert("personalNotes".into(), json!(notes.join("\n\n")));
    }
    let fingerprint = crate::fingerprint(&[block]);
    extended.push(json!({ "id": crate::FINGERPRINT_PROPERTY_ID, "value": fingerprint }));
    g.insert(
        "singleValueExtendedProperties".into(),
        Value::Array(extended),
    );
    Ok(Contact {
        line: block.start(),
        uid,
        fingerprint,
        not_carried: not,
        photo,
        graph: Value::Object(g),
    })
}

fn count_extra(not: &[String], prefix: &str) -> usize {
    not.iter().filter(|n| n.starts_with(prefix)).count()
}

fn push_limited(list: &mut Vec<String>, number: String, kind: &str, not: &mut Vec<String>) {
    if list.len() < MAX_PHONES {
        list.push(number);
    } else {
        not.push(format!(
            "TEL ({number}, {kind}): Graph keeps two {kind} phones"
        ));
    }
}

fn set(m: &mut Map<String, Value>, key: &str, v: &str) {
    if !v.trim().is_empty() {
        m.insert(key.into(), json!(v));
    }
}

fn texts(e: &VCardEntry) -> Vec<String> {
    e.values
        .iter()
        .map(|v| match v {
            VCardValue::Text(t) => t.clone(),
            VCardValue::Component(c) => c.join(","),
            VCardValue::Integer(i) => i.to_string(),
            VCardValue::Float(f) => f.to_string(),
            VCardValue::Boolean(b) => b.to_string(),
            VCardValue::PartialDateTime(p) => partial(p),
            VCardValue::Binary(d) => format!("<{} bytes>", d.data.len()),
            VCardValue::Sex(s) => format!("{s:?}"),
            VCardValue::GramGender(s) => format!("{s:?}"),
            VCardValue::Kind(s) => format!("{s:?}"),
        })
        .collect()
}

fn types(e: &VCardEntry) -> Vec<VCardType> {
    let mut out = Vec::new();
    for p in &e.params {
        if p.name == VCardParameterName::Type {
            match &p.value {
                VCardParameterValue::Type(t) => out.push(t.clone()),
                VCardParameterValue::Text(t) => {
                    for part in t.split(',') {
                        match part.trim().to_ascii_lowercase().as_str() {
                            "work" => out.push(VCardType::Work),
                            "home" => out.push(VCardType::Home),
                            "cell" | "mobile" => out.push(VCardType::Cell),
                            "fax" => out.push(VCardType::Fax),
                            "pager" => out.push(VCardType::Pager),
                            "spouse" => out.push(VCardType::Spouse),
                            "child" => out.push(VCardType::Child),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn type_names(e: &VCardEntry) -> String {
    let t: Vec<String> = types(e)
        .iter()
        .map(|t| format!("{t:?}").to_ascii_lowercase())
        .collect();
    t.join(",")
}

fn date(e: &VCardEntry) -> Option<String> {
    match e.values.first()? {
        VCardValue::PartialDateTime(p) => {
            Some(format!("{:04}-{:02}-{:02}", p.year?, p.month?, p.day?))
        }
        VCardValue::Text(t) => {
            let digits: String = t.chars().filter(|c| c.is_ascii_digit()).collect();
            (digits.len() == 8)
                .then(|| format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..8]))
        }
        _ => None,
    }
}

fn partial(p: &PartialDateTime) -> String {
    let mut s = String::new();
    match (p.year, p.month, p.day) {
        (Some(y), Some(m), Some(d)) => s.push_str(&format!("{y:04}-{m:02}-{d:02}")),
        (None, Some(m), Some(d)) => s.push_str(&format!("--{m:02}-{d:02}")),
        (Some(y), m, _) => s.push_str(&format!(
            "{y:04}{}",
            m.map(|m| format!("-{m:02}")).unwrap_or_default()
        )),
        _ => {}
    }
    if let (Some(h), Some(mi)) = (p.hour, p.minute) {
        s.push_str(&format!("T{h:02}:{mi:02}"));
    }
    s
}

fn prop_label(p: &VCardProperty) -> String {
    format!("{p:?}").to_ascii_uppercase()
}

fn sniff(b: &[u8]) -> &'static str {
    if b.starts_with(b"\x89PNG") {
        "image/png"
    } else if b.starts_with(b"GIF8") {
        "image/gif"
    } else {
        "image/jpeg"
    }
}

pub(crate) fn describe(e: &Entry) -> String {
    match e {
        Entry::InvalidLine(l) => format!("invalid line {:?}", truncate(l, 60)),
        Entry::UnexpectedComponentEnd { expected, found } => {
            format!("END:{found:?} where END:{expected:?} was expected")
        }
        Entry::UnterminatedComponent(c) => format!("{c} is never ended"),
        Entry::TooManyComponents => "too many components".to_string(),
        Entry::Eof => "no item".to_string(),
        _ => "an unexpected kind of item".to_string(),
    }
}
