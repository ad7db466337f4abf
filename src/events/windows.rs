//! Windows Security events as the forwarders admins already run send them (Fluent Bit's
//! `winevtlog` input through its `http` output, NXLog's `im_msvistalog` through `om_http`):
//! which records are sign-ins of a directory's people, whose and when. Pure: the body read
//! into records, and one record mapped at a time; `events::ingest_windows` does the I/O.
//!
//! Two shapes arrive. NXLog names the event's fields (`TargetUserName`, `LogonType`,
//! `Status`, `EventID`, `EventTime`). Fluent Bit sends the event's values in order
//! (`StringInserts`), with `EventID` and `TimeCreated`, or with `Render_Event_As_XML` the
//! whole event as XML in `System` (named `<Data>`, and the exact UTC `SystemTime`).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Most records one request may carry.
pub const MAX_RECORDS: usize = 20_000;

/// 4624: an account was successfully logged on.
pub const LOGON: u64 = 4624;
/// 4768: a Kerberos authentication ticket (TGT) was requested.
pub const TGT: u64 = 4768;

/// What one forwarded record is to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// A person of the directory signed in.
    Login(Login),
    /// A well-formed record that is no interactive sign-in of the directory's people.
    Ignored(String),
    /// A record that cannot be read as a 4624 or 4768 event; the message names the fix.
    Malformed(String),
}

/// A sign-in read from a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// `TargetUserName` as Windows wrote it (the directory compares it without case).
    pub username: String,
    pub at: DateTime<Utc>,
    /// For the audit trail and the results: `windows 4624 logon type 10`, `windows 4768`.
    pub what: String,
}

/// The 4624 logon types that are a person at a keyboard (or a remote desktop).
fn interactive(logon_type: u64) -> Option<&'static str> {
    match logon_type {
        2 => Some("interactive"),
        7 => Some("unlock"),
        10 => Some("remote interactive"),
        11 => Some("cached interactive"),
        _ => None,
    }
}

/// What the other logon types are, for the reason a record is ignored.
fn logon_type_name(logon_type: u64) -> &'static str {
    match logon_type {
        3 => "network",
        4 => "batch",
        5 => "service",
        8 => "network cleartext",
        9 => "new credentials",
        12 => "cached remote interactive",
        13 => "cached unlock",
        _ => "not interactive",
    }
}

/// Where a field is in Fluent Bit's `StringInserts` (the event's template order, the same in
/// every version of the event: later versions only append).
fn insert_position(event_id: u64, field: &str) -> Option<usize> {
    match (event_id, field) {
        (LOGON, "TargetUserName") => Some(5),
        (LOGON, "TargetDomainName") => Some(6),
        (LOGON, "LogonType") => Some(8),
        (TGT, "TargetUserName") => Some(0),
        (TGT, "TargetDomainName") => Some(1),
        (TGT, "Status") => Some(6),
        _ => None,
    }
}

/// Maps one record. `domains` are the directory's Windows domain names (NetBIOS and DNS),
/// compared without regard to case.
pub fn map(record: &Value, domains: &[String]) -> Mapped {
    let Value::Object(r) = record else {
        return Mapped::Malformed(format!(
            "a record is a JSON object, not {}",
            json_kind(record)
        ));
    };
    // Read once here; every field below is looked up in what it gave.
    let xml = match r
        .get("System")
        .and_then(Value::as_str)
        .map(EventXml::read)
        .transpose()
    {
        Ok(xml) => xml,
        Err(why) => return Mapped::Malformed(why),
    };
    let event_id = match r.get("EventID") {
        Some(v) => number(v),
        None => xml
            .as_ref()
            .and_then(|x| x.event_id.as_deref())
            .and_then(|t| t.trim().parse().ok()),
    };
    let Some(event_id) = event_id else {
        return Mapped::Malformed(
            "no EventID: not a Windows event as Fluent Bit's winevtlog or NXLog's im_msvistalog sends it"
                .into(),
        );
    };
    if event_id != LOGON && event_id != TGT {
        return Mapped::Ignored(format!(
            "event {event_id} is not a sign-in (only 4624 and 4768 are read)"
        ));
    }
    let fields = Fields {
        record: r,
        xml: xml.as_ref(),
        inserts: r.get("StringInserts").and_then(Value::as_array),
        event_id,
    };
    let Some(name) = fields.get("TargetUserName") else {
        return fields.missing("TargetUserName");
    };
    let Some(name) = name.as_str().map(str::trim) else {
        return Mapped::Malformed(format!("TargetUserName {} is not text", shown(&name)));
    };
    if name.is_empty() || name == "-" {
        return Mapped::Ignored("no account name".into());
    }
    if name.ends_with('$') {
        return Mapped::Ignored("a machine account (the name ends in $)".into());
    }
    if name.chars().any(char::is_control) || name.len() > 256 {
        return Mapped::Malformed("TargetUserName is not an account name".into());
    }
    let what = if event_id == LOGON {
        let Some(raw) = fields.get("LogonType") else {
            return fields.missing("LogonType");
        };
        let Some(logon_type) = number(&raw) else {
            return Mapped::Malformed(format!("LogonType {} is not a number", shown(&raw)));
        };
        if interactive(logon_type).is_none() {
            return Mapped::Ignored(format!(
                "logon type {logon_type} ({}) is not an interactive sign-in",
                logon_type_name(logon_type)
            ));
        }
        format!("windows 4624 logon type {logon_type}")
    } else {
        let Some(raw) = fields.get("Status") else {
            return fields.missing("Status");
        };
        match status(&raw) {
            Some(0) => "windows 4768".to_string(),
            Some(code) => {
                return Mapped::Ignored(format!(
                    "a refused Kerberos request (4768 with status {code:#x})"
                ))
            }
            None => {
                return Mapped::Malformed(format!("Status {} is not a status code", shown(&raw)))
            }
        }
    };
    let Some(domain) = fields.get("TargetDomainName") else {
        return fields.missing("TargetDomainName");
    };
    let domain = domain.as_str().map(str::trim).unwrap_or_default();
    if !domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        return Mapped::Ignored(format!(
            "domain `{}` is not one of the directory's Windows domains ({})",
            shorten(domain),
            if domains.is_empty() {
                "none: set windows_domains".to_string()
            } else {
                domains.join(", ")
            }
        ));
    }
    let at = match time_of(r, xml.as_ref()) {
        Ok(at) => at,
        Err(why) => return Mapped::Malformed(why),
    };
    Mapped::Login(Login {
        username: name.to_string(),
        at,
        what,
    })
}

/// The event's own fields, wherever the forwarder put them.
struct Fields<'a> {
    record: &'a Map<String, Value>,
    xml: Option<&'a EventXml>,
    inserts: Option<&'a Vec<Value>>,
    event_id: u64,
}

impl Fields<'_> {
    /// A field by its name: NXLog's (top level), the XML's `<Data Name=...>`, or Fluent
    /// Bit's value at its position.
    fn get(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.record.get(name) {
            return Some(v.clone());
        }
        if let Some(text) = self.xml.and_then(|x| x.data(name)) {
            return Some(Value::String(text.to_string()));
        }
        let at = insert_position(self.event_id, name)?;
        self.inserts?.get(at).cloned()
    }

    fn missing(&self, name: &str) -> Mapped {
        Mapped::Malformed(match self.inserts {
            Some(values) => format!(
                "StringInserts has {} values, too few for a {} (its {name} is missing)",
                values.len(),
                self.event_id
            ),
            None => format!(
                "{} without {name}: send the event's fields (NXLog im_msvistalog) or its StringInserts (Fluent Bit winevtlog, String_Inserts on)",
                self.event_id
            ),
        })
    }
}

/// When the event happened: NXLog's `EventTime`, Fluent Bit's `TimeCreated`, or the XML's
/// `<TimeCreated SystemTime=...>`. A time must say its offset from UTC: a forwarder's local
/// time without one could be hours off.
fn time_of(r: &Map<String, Value>, xml: Option<&EventXml>) -> Result<DateTime<Utc>, String> {
    let text = if let Some(v) = r.get("EventTime").or_else(|| r.get("TimeCreated")) {
        v.as_str()
            .ok_or_else(|| format!("the time {} is not text", shown(v)))?
            .to_string()
    } else if let Some(t) = xml.and_then(|x| x.system_time.clone()) {
        t
    } else {
        return Err("no time: EventTime (NXLog) or TimeCreated (Fluent Bit)".into());
    };
    parse_time(&text)
}

/// An ISO 8601 time with its offset: `2024-02-22T20:38:56.221331+01:00` (NXLog),
/// `2023-10-25T12:48:08.6246658Z` (Windows' XML), `2024-01-12 22:00:47 +1000` (Fluent Bit).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    let with_offset = DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f %z"))
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%z"));
    if let Ok(at) = with_offset {
        return Ok(at.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"));
    if naive.is_ok() {
        return Err(format!(
            "the time `{}` has no offset from UTC, so it could be any time zone's: send ISO 8601 with the offset (NXLog: DateFormat YYYY-MM-DDThh:mm:ss.sUTC in the xm_json extension; see docs/windows.md)",
            shorten(t)
        ));
    }
    Err(format!(
        "the time `{}` is not an ISO 8601 date and time",
        shorten(t)
    ))
}

/// A whole number, as a JSON number or as text (`4624`, `"10"`).
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A 4768 status: `0x0` as Windows writes it, or a number.
fn status(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            }
        }
        other => number(other),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// At most 64 characters of a value quoted in a reason (records come from anyone holding the
/// token; the reasons are counted by their text).
fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// A JSON value quoted in a reason, shortened like [`shorten`].
fn shown(v: &Value) -> String {
    shorten(&v.to_string())
}

/// The namespace of the XML Windows renders events in (`EvtRender`, `EvtRenderEventXml`):
/// https://learn.microsoft.com/en-us/windows/win32/wes/eventschema-schema.
const EVENT_NS: &str = "http://schemas.microsoft.com/win/2004/08/events/event";

/// Most bytes of `System` XML read. A Security event renders to a few KiB; anything larger is
/// no event of ours, and parsing it would be work whoever holds the token could multiply by
/// the records of a batch.
const MAX_XML: usize = 64 * 1024;

/// What [`map`] reads of an event Fluent Bit sends as XML (`Render_Event_As_XML`): elements
/// by their local name in [`EVENT_NS`], whatever prefix the document gives it.
#[derive(Debug, Default, PartialEq, Eq)]
struct EventXml {
    /// The text of `Event/System/EventID`.
    event_id: Option<String>,
    /// `Event/System/TimeCreated/@SystemTime`.
    system_time: Option<String>,
    /// `Event/EventData/Data`, by their `Name`, in document order.
    data: Vec<(String, String)>,
}

impl EventXml {
    /// Parses the XML once. Well-formed XML that is no Windows event gives no fields (the
    /// reason then names what is missing); XML that is too large or not well-formed is an
    /// error, a short one: never the XML itself.
    fn read(xml: &str) -> Result<EventXml, String> {
        if xml.len() > MAX_XML {
            return Err(
                "System is more than 64 KiB of XML: larger than any Windows event".to_string(),
            );
        }
        // The defaults refuse DTDs, so no entity is declared that could expand.
        let doc = roxmltree::Document::parse(xml).map_err(|e| {
            format!(
                "System is not well-formed XML ({})",
                shorten(&e.to_string())
            )
        })?;
        let mut out = EventXml::default();
        let event = doc.root_element();
        if !event.has_tag_name((EVENT_NS, "Event")) {
            return Ok(out);
        }
        if let Some(system) = child(event, "System") {
            out.event_id = child(system, "EventID").map(text);
            out.system_time = child(system, "TimeCreated")
                .and_then(|t| t.attribute("SystemTime"))
                .map(str::to_string);
        }
        if let Some(data) = child(event, "EventData") {
            out.data = data
                .children()
                .filter(|d| d.has_tag_name((EVENT_NS, "Data")))
                .filter_map(|d| Some((d.attribute("Name")?.to_string(), text(d))))
                .collect();
        }
        Ok(out)
    }

    /// The text of the first `<Data Name='name'>` (`<Data Name='name'/>` is empty text).
    fn data(&self, name: &str) -> Option<&str> {
        self.data
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, text)| text.as_str())
    }
}

/// The first child element of `node` named `name` in [`EVENT_NS`].
fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    node.children().find(|c| c.has_tag_name((EVENT_NS, name)))
}

/// An element's own text, entities and CDATA read (a comment inside does not cut it short).
fn text(node: roxmltree::Node<'_, '_>) -> String {
    node.children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect()
}

/// Why a body cannot be read as records.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    Empty,
    NotJson(String),
    TooMany,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Empty => write!(f, "body: empty; send the forwarder's JSON records"),
            BodyError::NotJson(e) => write!(
                f,
                "body: not JSON ({e}); send a JSON array, JSON lines or one JSON object (Fluent Bit: Format json; NXLog: Exec to_json())"
            ),
            BodyError::TooMany => write!(
                f,
                "body: at most {MAX_RECORDS} records per request; lower the forwarder's batch size"
            ),
        }
    }
}

/// The records of a body: a JSON array of records (Fluent Bit `Format json`), records one
/// after another (`json_lines`, `json_stream`, NXLog `BatchMode multiline`), or one record
/// (NXLog without batching). Arrays among the values are flattened. Reading stops past
/// [`MAX_RECORDS`], before more are kept.
pub fn records(body: &[u8]) -> Result<Vec<Value>, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    let mut out: Vec<Value> = Vec::new();
    for batch in serde_json::Deserializer::from_slice(body).into_iter::<Batch>() {
        let Batch(values) = batch.map_err(|e| {
            if e.to_string().contains(TOO_MANY) {
                BodyError::TooMany
            } else {
                BodyError::NotJson(e.to_string())
            }
        })?;
        if out.len() + values.len() > MAX_RECORDS {
            return Err(BodyError::TooMany);
        }
        out.extend(values);
    }
    Ok(out)
}

const TOO_MANY: &str = "too many records";

/// The records of one top-level JSON value, at most [`MAX_RECORDS`].
struct Batch(Vec<Value>);

impl<'de> serde::Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut values = Vec::new();
        Collect(&mut values).deserialize(d)?;
        Ok(Batch(values))
    }
}

/// Reads one top-level JSON value into the list: an array's elements one by one (failing
/// past the limit), anything else as one record.
struct Collect<'a>(&'a mut Vec<Value>);

impl<'de> DeserializeSeed<'de> for Collect<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON record or an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            push(self.0, v).map_err(A::Error::custom)?;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let v = serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        push(self.0, Value::Object(v)).map_err(A::Error::custom)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        push(self.0, Value::Bool(v)).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        push(self.0, Value::from(v)).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        push(self.0, Value::from(v)).map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        push(self.0, Value::from(v)).map_err(E::custom)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        push(self.0, Value::from(v)).map_err(E::custom)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        push(self.0, Value::Null).map_err(E::custom)
    }
}

fn push(out: &mut Vec<Value>, v: Value) -> Result<(), &'static str> {
    if out.len() >= MAX_RECORDS {
        return Err(TOO_MANY);
    }
    out.push(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn domains() -> Vec<String> {
        vec!["CORP".into(), "corp.example".into()]
    }

    /// A 4624 as Fluent Bit's winevtlog packs it (plugins/in_winevtlog/pack.c): system
    /// values by name, the event's own values in template order in `StringInserts`.
    fn fluent_bit_4624(user: &str, domain: &str, logon_type: u64, time: &str) -> Value {
        json!({
            "date": 1_705_486_846.256_186,
            "ProviderName": "Microsoft-Windows-Security-Auditing",
            "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
            "Qualifiers": "",
            "EventID": 4624,
            "Version": 2,
            "Level": 0,
            "Task": 12544,
            "Opcode": 0,
            "Keywords": "0x8020000000000000",
            "TimeCreated": time,
            "EventRecordID": 1_234_567,
            "ActivityID": "{F8E5A1C2-0B3D-4E6F-8A9B-1C2D3E4F5A6B}",
            "RelatedActivityID": "",
            "ProcessID": 636,
            "ThreadID": 4712,
            "Channel": "Security",
            "Computer": "DC01.corp.example",
            "UserID": "",
            "Message": "An account was successfully logged on.",
            "StringInserts": [
                "S-1-5-18", "DC01$", "CORP", "0x3e7",
                "S-1-5-21-3623811015-3361044348-30300820-1104", user, domain, "0x1b3c9e2",
                logon_type, "User32 ", "Negotiate", "WS01",
                "{00000000-0000-0000-0000-000000000000}", "-", "-", 0, "0x2a8",
                "C:\\Windows\\System32\\svchost.exe", "10.0.0.21", "0", "%%1833", "-", "-", "-",
                "%%1843", "0x0", "%%1842"
            ]
        })
    }

    /// A 4768 as Fluent Bit packs it: TargetUserName, TargetDomainName (the realm), …,
    /// Status (a hex number as `0x…`) at 6.
    fn fluent_bit_4768(user: &str, realm: &str, status: &str, time: &str) -> Value {
        json!({
            "EventID": 4768,
            "TimeCreated": time,
            "Channel": "Security",
            "Computer": "DC01.corp.example",
            "StringInserts": [
                user, realm, "S-1-5-21-3623811015-3361044348-30300820-1104", "krbtgt",
                "S-1-5-21-3623811015-3361044348-30300820-502", "0x40810010", status, "0x12",
                "2", "::ffff:10.0.0.21", "49731", "", "", ""
            ]
        })
    }

    /// A 4624 as NXLog's im_msvistalog names it, through xm_json's to_json().
    fn nxlog_4624(user: &str, domain: &str, logon_type: &str, time: &str) -> Value {
        json!({
            "EventTime": time,
            "Hostname": "DC01.corp.example",
            "EventType": "AUDIT_SUCCESS",
            "EventID": 4624,
            "SourceName": "Microsoft-Windows-Security-Auditing",
            "Channel": "Security",
            "Category": "Logon",
            "SubjectUserName": "DC01$",
            "SubjectDomainName": "CORP",
            "TargetUserName": user,
            "TargetDomainName": domain,
            "LogonType": logon_type,
            "SourceModuleType": "im_msvistalog"
        })
    }

    /// A 4624 as Fluent Bit sends it with `Render_Event_As_XML`: the whole event in `System`.
    fn fluent_bit_xml_4624(user: &str, logon_type: u64, system_time: &str) -> Value {
        let xml = format!(
            "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>\
             <Provider Name='Microsoft-Windows-Security-Auditing' Guid='{{54849625-5478-4994-A5BA-3E3B0328C30D}}'/>\
             <EventID>4624</EventID><Version>2</Version><Level>0</Level><Task>12544</Task>\
             <TimeCreated SystemTime='{system_time}'/><EventRecordID>1234567</EventRecordID>\
             <Channel>Security</Channel><Computer>DC01.corp.example</Computer><Security/></System>\
             <EventData><Data Name='SubjectUserSid'>S-1-5-18</Data><Data Name='SubjectUserName'>DC01$</Data>\
             <Data Name='TargetUserName'>{user}</Data><Data Name='TargetDomainName'>CORP</Data>\
             <Data Name='LogonType'>{logon_type}</Data><Data Name='WorkstationName'>WS01</Data>\
             <Data Name='IpAddress'>-</Data></EventData></Event>"
        );
        json!({"System": xml, "Message": "An account was successfully logged on.", "StringInserts": []})
    }

    fn login(m: Mapped) -> Login {
        match m {
            Mapped::Login(l) => l,
            other => panic!("expected a login, got {other:?}"),
        }
    }

    fn ignored(m: Mapped) -> String {
        match m {
            Mapped::Ignored(why) => why,
            other => panic!("expected ignored, got {other:?}"),
        }
    }

    fn malformed(m: Mapped) -> String {
        match m {
            Mapped::Malformed(why) => why,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_interactive_logon_types_are_sign_ins_in_both_shapes() {
        for t in [2, 7, 10, 11] {
            let fb = login(map(
                &fluent_bit_4624("alice", "CORP", t, "2024-05-02 09:15:02 +0200"),
                &domains(),
            ));
            assert_eq!(fb.username, "alice");
            assert_eq!(fb.at, utc("2024-05-02T07:15:02Z"));
            assert_eq!(fb.what, format!("windows 4624 logon type {t}"));
            let nx = login(map(
                &nxlog_4624(
                    "alice",
                    "CORP",
                    &t.to_string(),
                    "2024-05-02T09:15:02.221331+02:00",
                ),
                &domains(),
            ));
            assert_eq!(nx.username, "alice");
            assert_eq!(nx.at, utc("2024-05-02T07:15:02.221331Z"));
            assert_eq!(nx.what, fb.what);
        }
        // NXLog Agent 6 writes numbers as numbers.
        let mut typed = nxlog_4624("alice", "CORP", "2", "2024-05-02T07:15:02Z");
        typed["LogonType"] = json!(2);
        assert_eq!(
            login(map(&typed, &domains())).what,
            "windows 4624 logon type 2"
        );
    }

    #[test]
    fn other_logon_types_are_ignored_with_their_name() {
        for (t, name) in [
            (3, "network"),
            (4, "batch"),
            (5, "service"),
            (8, "network cleartext"),
            (9, "new credentials"),
            (0, "not interactive"),
        ] {
            let why = ignored(map(
                &fluent_bit_4624("alice", "CORP", t, "2024-05-02 09:15:02 +0200"),
                &domains(),
            ));
            assert_eq!(
                why,
                format!("logon type {t} ({name}) is not an interactive sign-in")
            );
        }
    }

    #[test]
    fn a_granted_ticket_is_a_sign_in_a_refused_one_is_not() {
        let l = login(map(
            &fluent_bit_4768("alice", "CORP.EXAMPLE", "0x0", "2024-05-02 09:15:02 +0200"),
            &domains(),
        ));
        assert_eq!(
            (l.username.as_str(), l.what.as_str()),
            ("alice", "windows 4768")
        );
        for (status, shown) in [("0x18", "0x18"), ("0x6", "0x6"), ("0x12", "0x12")] {
            let why = ignored(map(
                &fluent_bit_4768("alice", "CORP.EXAMPLE", status, "2024-05-02 09:15:02 +0200"),
                &domains(),
            ));
            assert_eq!(
                why,
                format!("a refused Kerberos request (4768 with status {shown})")
            );
        }
        // NXLog names the fields; a status may come as a number.
        let nx = json!({"EventID": 4768, "EventTime": "2024-05-02T07:15:02Z",
            "TargetUserName": "alice", "TargetDomainName": "corp.example", "Status": 0});
        assert_eq!(login(map(&nx, &domains())).what, "windows 4768");
        let bad = json!({"EventID": "4768", "EventTime": "2024-05-02T07:15:02Z",
            "TargetUserName": "alice", "TargetDomainName": "CORP", "Status": "granted"});
        assert!(malformed(map(&bad, &domains())).contains("Status"));
    }

    #[test]
    fn other_events_machine_accounts_and_missing_names_are_ignored() {
        let mut logoff = nxlog_4624("alice", "CORP", "2", "2024-05-02T07:15:02Z");
        for id in [json!(4625), json!(4634), json!("4769")] {
            logoff["EventID"] = id.clone();
            let why = ignored(map(&logoff, &domains()));
            assert!(why.starts_with("event 4"), "{why}");
            assert!(why.ends_with("is not a sign-in (only 4624 and 4768 are read)"));
        }
        for machine in ["WS01$", "DC01$"] {
            assert_eq!(
                ignored(map(
                    &fluent_bit_4624(machine, "CORP", 2, "2024-05-02 09:15:02 +0200"),
                    &domains()
                )),
                "a machine account (the name ends in $)"
            );
            assert_eq!(
                ignored(map(
                    &fluent_bit_4768(machine, "CORP.EXAMPLE", "0x0", "2024-05-02 09:15:02 +0200"),
                    &domains()
                )),
                "a machine account (the name ends in $)"
            );
        }
        for empty in ["", "-", "  "] {
            assert_eq!(
                ignored(map(
                    &nxlog_4624(empty, "CORP", "2", "2024-05-02T07:15:02Z"),
                    &domains()
                )),
                "no account name"
            );
        }
    }

    #[test]
    fn only_the_directorys_domains_count_in_any_case() {
        for d in ["CORP", "corp", "Corp.Example", "CORP.EXAMPLE"] {
            login(map(
                &nxlog_4624("alice", d, "2", "2024-05-02T07:15:02Z"),
                &domains(),
            ));
        }
        // A workstation's local account named like a domain user.
        let why = ignored(map(
            &nxlog_4624("alice", "WS01", "2", "2024-05-02T07:15:02Z"),
            &domains(),
        ));
        assert_eq!(
            why,
            "domain `WS01` is not one of the directory's Windows domains (CORP, corp.example)"
        );
        let why = ignored(map(
            &nxlog_4624("alice", "CORP", "2", "2024-05-02T07:15:02Z"),
            &[],
        ));
        assert!(why.contains("none: set windows_domains"), "{why}");
        let why = ignored(map(
            &nxlog_4624("alice", &"X".repeat(500), "2", "2024-05-02T07:15:02Z"),
            &domains(),
        ));
        assert!(why.len() < 200, "a long domain is shortened: {why}");
    }

    #[test]
    fn fluent_bits_xml_rendering_gives_named_fields_and_the_exact_utc_time() {
        let l = login(map(
            &fluent_bit_xml_4624("alice", 10, "2023-10-25T12:48:08.624665800Z"),
            &domains(),
        ));
        assert_eq!(l.username, "alice");
        assert_eq!(l.what, "windows 4624 logon type 10");
        assert_eq!(l.at, utc("2023-10-25T12:48:08.624665800Z"));
        let why = ignored(map(
            &fluent_bit_xml_4624("bob", 3, "2023-10-25T12:48:08.6246658Z"),
            &domains(),
        ));
        assert!(why.starts_with("logon type 3 (network)"), "{why}");
        let l = login(map(
            &fluent_bit_xml_4624("o&apos;brien &amp; co", 2, "2023-10-25T12:48:08Z"),
            &domains(),
        ));
        assert_eq!(l.username, "o'brien & co", "XML entities are read");
    }

    /// The XML of [`fluent_bit_xml_4624`] changed by `edit`, as Fluent Bit's record.
    fn xml_edited(edit: impl Fn(&str) -> String) -> Value {
        let mut record = fluent_bit_xml_4624("alice", 2, "2023-10-25T12:48:08Z");
        let xml = record["System"].as_str().unwrap().to_string();
        record["System"] = json!(edit(&xml));
        record
    }

    // What XML allows that Windows' own rendering does not use (single quotes, no CDATA,
    // no prefix) is read as XML reads it: https://www.w3.org/TR/xml/ (sections 2.4, 2.7,
    // 3.1, 4.1) and https://www.w3.org/TR/xml-names/.

    #[test]
    fn names_with_entities_quotes_and_cdata_are_read_as_xml_says() {
        let l = login(map(
            &fluent_bit_xml_4624("smith &amp; sons", 2, "2023-10-25T12:48:08Z"),
            &domains(),
        ));
        assert_eq!(l.username, "smith & sons");
        let l = login(map(
            &fluent_bit_xml_4624("ren&#xE9;e&#46;m", 2, "2023-10-25T12:48:08Z"),
            &domains(),
        ));
        assert_eq!(l.username, "renée.m", "character references are read");
        let l = login(map(
            &fluent_bit_xml_4624("<![CDATA[o'brien & <co>]]>", 2, "2023-10-25T12:48:08Z"),
            &domains(),
        ));
        assert_eq!(l.username, "o'brien & <co>", "CDATA is text as written");
        let l = login(map(
            &fluent_bit_xml_4624("al<!-- a comment -->ice", 2, "2023-10-25T12:48:08Z"),
            &domains(),
        ));
        assert_eq!(l.username, "alice", "a comment does not cut the name short");

        // Double quotes instead of Windows' single ones, throughout.
        let l = login(map(&xml_edited(|x| x.replace('\'', "\"")), &domains()));
        assert_eq!(
            (l.username.as_str(), l.what.as_str()),
            ("alice", "windows 4624 logon type 2")
        );
        assert_eq!(l.at, utc("2023-10-25T12:48:08Z"));
    }

    #[test]
    fn an_empty_target_user_name_element_is_no_account_name() {
        let record = xml_edited(|x| {
            x.replace(
                "<Data Name='TargetUserName'>alice</Data>",
                "<Data Name='TargetUserName'/>",
            )
        });
        assert_eq!(ignored(map(&record, &domains())), "no account name");
        let record = xml_edited(|x| {
            x.replace(
                "<Data Name='TargetUserName'>alice</Data>",
                "<Data Name='TargetUserName'></Data>",
            )
        });
        assert_eq!(ignored(map(&record, &domains())), "no account name");
    }

    #[test]
    fn the_event_namespace_is_read_under_any_prefix_and_only_that_namespace() {
        let prefixed = xml_edited(|x| {
            x.replace("</", "\u{1}")
                .replace('<', "<ev:")
                .replace('\u{1}', "</ev:")
                .replace("xmlns=", "xmlns:ev=")
        });
        assert!(prefixed["System"]
            .as_str()
            .unwrap()
            .starts_with("<ev:Event xmlns:ev="));
        let l = login(map(&prefixed, &domains()));
        assert_eq!(
            (l.username.as_str(), l.what.as_str()),
            ("alice", "windows 4624 logon type 2")
        );
        assert_eq!(l.at, utc("2023-10-25T12:48:08Z"));

        // Well-formed, but not Windows' event XML: nothing in it is an event's field.
        let other = xml_edited(|x| {
            x.replace(
                "http://schemas.microsoft.com/win/2004/08/events/event",
                "urn:example:not-windows",
            )
        });
        assert!(malformed(map(&other, &domains())).starts_with("no EventID"));
        let no_ns = xml_edited(|x| {
            x.replace(
                " xmlns='http://schemas.microsoft.com/win/2004/08/events/event'",
                "",
            )
        });
        assert!(malformed(map(&no_ns, &domains())).starts_with("no EventID"));
    }

    #[test]
    fn xml_that_is_not_well_formed_is_malformed_with_a_short_reason() {
        let whole = fluent_bit_xml_4624("alice", 2, "2023-10-25T12:48:08Z")["System"]
            .as_str()
            .unwrap()
            .to_string();
        let long_name = format!("<Event><{0}></{0}x></Event>", "Computer".repeat(2_000));
        for (bad, what) in [
            (whole[..whole.len() / 2].to_string(), "cut short"),
            (
                whole.replace("</EventData>", "</EventDat>"),
                "a mismatched tag",
            ),
            (
                whole.replace("alice", "al&nbsp;ice"),
                "an undeclared entity",
            ),
            (whole.replace("alice", "al & ice"), "a bare ampersand"),
            (
                whole.replace("Name='LogonType'", "Name=LogonType"),
                "an unquoted attribute",
            ),
            (format!("{whole}<Event/>"), "two root elements"),
            ("".to_string(), "no element"),
            ("not xml at all".to_string(), "text"),
            (long_name, "a long tag name"),
        ] {
            let why = malformed(map(
                &json!({"System": bad, "Message": "", "StringInserts": []}),
                &domains(),
            ));
            assert!(
                why.starts_with("System is not well-formed XML ("),
                "{what}: {why}"
            );
            assert!(why.len() < 200, "{what}: the reason is short: {why}");
            assert!(!why.contains("DC01.corp.example"), "{what}: {why}");
        }
    }

    #[test]
    fn entity_expansion_and_oversized_xml_are_refused_without_reading_them() {
        // The "billion laughs": a DTD whose entities expand tenfold at each of ten levels.
        let mut dtd = String::from("<!DOCTYPE Event [<!ENTITY l0 'ha'>");
        for i in 1..10 {
            let refs = format!("&l{};", i - 1).repeat(10);
            dtd.push_str(&format!("<!ENTITY l{i} '{refs}'>"));
        }
        dtd.push(']');
        dtd.push('>');
        let laughs = xml_edited(|x| {
            format!(
                "{dtd}{}",
                x.replace(
                    "<Data Name='TargetUserName'>alice",
                    "<Data Name='TargetUserName'>&l9;"
                )
            )
        });
        let why = malformed(map(&laughs, &domains()));
        assert!(why.starts_with("System is not well-formed XML ("), "{why}");

        // A valid event padded to just under 64 KiB is still read; past it, it is not.
        let padded = |size: usize| {
            xml_edited(|x| {
                let pad = size - x.len() - "<Data Name='Pad'></Data>".len();
                x.replace(
                    "</EventData>",
                    &format!("<Data Name='Pad'>{}</Data></EventData>", "x".repeat(pad)),
                )
            })
        };
        let fits = padded(64 * 1024);
        assert_eq!(fits["System"].as_str().unwrap().len(), 64 * 1024);
        assert_eq!(login(map(&fits, &domains())).username, "alice");
        let over = padded(64 * 1024 + 1);
        assert_eq!(
            malformed(map(&over, &domains())),
            "System is more than 64 KiB of XML: larger than any Windows event"
        );
    }

    #[test]
    fn times_need_an_offset_from_utc() {
        for (text, at) in [
            (
                "2024-02-22T20:38:56.221331+01:00",
                "2024-02-22T19:38:56.221331Z",
            ),
            ("2024-02-22T19:38:56.221331Z", "2024-02-22T19:38:56.221331Z"),
            ("2024-01-12 22:00:47 +1000", "2024-01-12T12:00:47Z"),
            ("2024-01-12 22:00:47 -0500", "2024-01-13T03:00:47Z"),
            ("2024-01-12T22:00:47+0100", "2024-01-12T21:00:47Z"),
            ("2024-01-12 22:00:47+01:00", "2024-01-12T21:00:47Z"),
            (
                "2023-10-25T12:48:08.624665800Z",
                "2023-10-25T12:48:08.6246658Z",
            ),
        ] {
            assert_eq!(parse_time(text), Ok(utc(at)), "{text}");
        }
        for naive in ["2024-02-22 20:38:56", "2024-02-22T20:38:56.221331"] {
            let why = parse_time(naive).unwrap_err();
            assert!(
                why.contains("no offset from UTC") && why.contains("DateFormat"),
                "{why}"
            );
        }
        for junk in ["yesterday", "", "1708630736221331"] {
            assert!(parse_time(junk).unwrap_err().contains("not an ISO 8601"));
        }
        let why = malformed(map(
            &nxlog_4624("alice", "CORP", "2", "2024-02-22 20:38:56"),
            &domains(),
        ));
        assert!(why.contains("no offset from UTC"), "{why}");
        let mut no_time = nxlog_4624("alice", "CORP", "2", "x");
        no_time.as_object_mut().unwrap().remove("EventTime");
        assert!(malformed(map(&no_time, &domains())).starts_with("no time"));
    }

    #[test]
    fn records_that_are_not_windows_events_are_malformed() {
        assert_eq!(
            malformed(map(&json!("text"), &domains())),
            "a record is a JSON object, not a string"
        );
        assert!(malformed(map(&json!({"log": "hello"}), &domains())).starts_with("no EventID"));
        // Fluent Bit with String_Inserts off, or a short list.
        let mut fb = fluent_bit_4624("alice", "CORP", 2, "2024-05-02 09:15:02 +0200");
        fb.as_object_mut().unwrap().remove("StringInserts");
        let why = malformed(map(&fb, &domains()));
        assert!(why.contains("String_Inserts on"), "{why}");
        fb["StringInserts"] = json!(["S-1-5-18", "DC01$"]);
        let why = malformed(map(&fb, &domains()));
        assert!(why.starts_with("StringInserts has 2 values"), "{why}");
        let mut nx = nxlog_4624("alice", "CORP", "two", "2024-05-02T07:15:02Z");
        assert!(malformed(map(&nx, &domains())).starts_with("LogonType \"two\""));
        nx["LogonType"] = json!("7".repeat(10_000));
        let why = malformed(map(&nx, &domains()));
        assert!(why.len() < 200, "a long value is shortened: {why}");
        nx["LogonType"] = json!("2");
        nx["TargetUserName"] = json!("al\u{0}ice");
        assert!(malformed(map(&nx, &domains())).contains("not an account name"));
        nx["TargetUserName"] = json!(42);
        assert!(malformed(map(&nx, &domains())).contains("not text"));
    }

    #[test]
    fn bodies_are_arrays_lines_streams_or_one_record() {
        let one = json!({"EventID": 4624});
        let array = serde_json::to_vec(&json!([one, one, one])).unwrap();
        assert_eq!(records(&array).unwrap().len(), 3);
        let lines = format!("{one}\n{one}\r\n\n{one}\n");
        assert_eq!(records(lines.as_bytes()).unwrap().len(), 3);
        let stream = format!("{one}{one}");
        assert_eq!(records(stream.as_bytes()).unwrap().len(), 2);
        assert_eq!(
            records(one.to_string().as_bytes()).unwrap(),
            vec![one.clone()]
        );
        assert_eq!(records(b"[]").unwrap(), Vec::<Value>::new());
        assert_eq!(records(b" \n "), Err(BodyError::Empty));
        for bad in [
            &b"<Event/>"[..],
            b"{\"EventID\": 4624",
            b"[1,2",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(records(bad), Err(BodyError::NotJson(_))),
                "{bad:?}"
            );
        }
        // A record that does not parse spoils the batch: it is no JSON body.
        let broken = format!("{one}\nnot json\n{one}\n");
        assert!(matches!(
            records(broken.as_bytes()),
            Err(BodyError::NotJson(_))
        ));
    }

    #[test]
    fn at_most_the_limit_of_records_is_read() {
        let full = format!("[{}0]", "0,".repeat(MAX_RECORDS - 1));
        assert_eq!(records(full.as_bytes()).unwrap().len(), MAX_RECORDS);
        let over = format!("[{}0]", "0,".repeat(MAX_RECORDS));
        assert_eq!(records(over.as_bytes()), Err(BodyError::TooMany));
        let lines = "{}\n".repeat(MAX_RECORDS + 1);
        assert_eq!(records(lines.as_bytes()), Err(BodyError::TooMany));
        let two_arrays = format!("[{0}0]\n[{0}0]", "0,".repeat(MAX_RECORDS / 2));
        assert_eq!(records(two_arrays.as_bytes()), Err(BodyError::TooMany));
        assert!(BodyError::TooMany.to_string().contains("20000"));
    }
}
