//! Spotler temporary (static) lists: `POST /templist` (create, at most
//! [`MAX_TEMPLISTS`] per account), `GET /templist`, `POST /templist/{id}` (add contacts) and
//! `DELETE /templist/{id}`, with the store behind them and the inspection API.
//!
//! Lists keep their members as contacts' own external ids (an alias is resolved on the way in),
//! in the order they were added.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State, rejection::PathRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{SpotlerError, error, external_id_of, parse_body};
use crate::{
    Sandbox,
    support::{now_utc, rfc3339_millis},
};

/// The most temporary lists an account holds at once (the integration guide's number).
pub(crate) const MAX_TEMPLISTS: usize = 30;

/// A stored temporary list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TempListRecord {
    /// `externalTemporaryListId`.
    pub(crate) id: String,
    /// Its title.
    pub(crate) name: String,
    /// Creation time, RFC 3339 with milliseconds.
    pub(crate) created_at: String,
    /// `API` for lists made through the API; other kinds can be seeded for tests.
    pub(crate) kind: String,
    /// Member contacts (own external ids), in the order added.
    pub(crate) contacts: Vec<String>,
}

/// Why a list operation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TempListError {
    /// The id is taken.
    IdExists,
    /// The name is taken.
    NameExists,
    /// The account holds [`MAX_TEMPLISTS`] lists.
    TooMany,
    /// No list with this id.
    NotFound,
}

/// The temporary lists of the account, in creation order.
#[derive(Debug, Default)]
pub(crate) struct TempListStore {
    lists: Vec<TempListRecord>,
}

impl TempListStore {
    /// Every list, oldest first.
    pub(crate) fn all(&self) -> &[TempListRecord] {
        &self.lists
    }

    /// Creates a list (its contacts already resolved).
    pub(crate) fn create(&mut self, record: TempListRecord) -> Result<(), TempListError> {
        if self.lists.iter().any(|l| l.id == record.id) {
            return Err(TempListError::IdExists);
        }
        if self.lists.iter().any(|l| l.name == record.name) {
            return Err(TempListError::NameExists);
        }
        if self.lists.len() >= MAX_TEMPLISTS {
            return Err(TempListError::TooMany);
        }
        self.lists.push(record);
        Ok(())
    }

    /// Adds contacts (already resolved) that are not members yet.
    pub(crate) fn add(&mut self, id: &str, contacts: Vec<String>) -> Result<(), TempListError> {
        let list = self
            .lists
            .iter_mut()
            .find(|l| l.id == id)
            .ok_or(TempListError::NotFound)?;
        for contact in contacts {
            if !list.contacts.contains(&contact) {
                list.contacts.push(contact);
            }
        }
        Ok(())
    }

    /// Deletes a list.
    pub(crate) fn delete(&mut self, id: &str) -> Result<(), TempListError> {
        let before = self.lists.len();
        self.lists.retain(|l| l.id != id);
        if self.lists.len() == before {
            Err(TempListError::NotFound)
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    external_temporary_list_id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    contacts: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct AddRequest {
    #[serde(default)]
    contacts: Vec<String>,
}

fn list_error(refused: &TempListError) -> Response {
    match refused {
        TempListError::IdExists => error(
            StatusCode::BAD_REQUEST,
            "ID_NOTUNIQUE",
            "Templist with this externalTemporaryListId already exists",
        ),
        TempListError::NameExists => error(
            StatusCode::BAD_REQUEST,
            "NAME_ALREADY_IN_USE",
            "Templist with this name already exists",
        ),
        TempListError::TooMany => error(StatusCode::BAD_REQUEST, "INVALID_STATE", "Too many temporary lists"),
        TempListError::NotFound => error(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND", "Templist not found"),
    }
}

fn required(value: Option<String>, field: &str) -> Result<String, SpotlerError> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            SpotlerError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMS",
                format!("{field} is required"),
            )
        })
}

/// The members' own external ids, or `None` when one of them is unknown.
fn resolve_all(sandbox: &Sandbox, contacts: &[String]) -> Option<Vec<String>> {
    let store = sandbox.spotler_store();
    contacts.iter().map(|id| store.resolve(id)).collect()
}

/// `POST /templist`.
pub(super) async fn create(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let request: CreateRequest = match parse_body(&headers, &body) {
        Ok(request) => request,
        Err(rejected) => return rejected.into_response(),
    };
    let (id, name) = match (
        required(request.external_temporary_list_id, "externalTemporaryListId"),
        required(request.name, "name"),
    ) {
        (Ok(id), Ok(name)) => (id, name),
        (Err(rejected), _) | (_, Err(rejected)) => return rejected.into_response(),
    };
    let Some(contacts) = resolve_all(&sandbox, &request.contacts) else {
        return error(
            StatusCode::BAD_REQUEST,
            "CONTACT_NOT_FOUND",
            "No templist created, one or more contacts could not be found",
        );
    };
    let mut members = Vec::with_capacity(contacts.len());
    for contact in contacts {
        if !members.contains(&contact) {
            members.push(contact);
        }
    }
    let record = TempListRecord {
        id,
        name,
        created_at: rfc3339_millis(now_utc()),
        kind: "API".to_owned(),
        contacts: members,
    };
    let result = sandbox.spotler_store().templists.create(record);
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => list_error(&refused),
    }
}

/// `GET /templist`.
pub(super) async fn list(State(sandbox): State<Sandbox>) -> Response {
    let lists: Vec<Value> = sandbox
        .spotler_store()
        .templists
        .all()
        .iter()
        .map(|l| {
            json!({
                "externalTemporaryListId": l.id,
                "name": l.name,
                "createdAt": l.created_at,
                "type": l.kind,
            })
        })
        .collect();
    Json(Value::Array(lists)).into_response()
}

/// `POST /templist/{externalTemporaryListId}`.
pub(super) async fn add(
    State(sandbox): State<Sandbox>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = match external_id_of(path) {
        Ok(id) => id,
        Err(rejected) => return rejected.into_response(),
    };
    let request: AddRequest = match parse_body(&headers, &body) {
        Ok(request) => request,
        Err(rejected) => return rejected.into_response(),
    };
    if !sandbox.spotler_store().templists.all().iter().any(|l| l.id == id) {
        return list_error(&TempListError::NotFound);
    }
    let Some(contacts) = resolve_all(&sandbox, &request.contacts) else {
        return error(
            StatusCode::BAD_REQUEST,
            "CONTACT_NOT_FOUND",
            "One or more contacts could not be found",
        );
    };
    let result = sandbox.spotler_store().templists.add(&id, contacts);
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => list_error(&refused),
    }
}

/// `DELETE /templist/{externalTemporaryListId}`.
pub(super) async fn delete(State(sandbox): State<Sandbox>, path: Result<Path<String>, PathRejection>) -> Response {
    let id = match external_id_of(path) {
        Ok(id) => id,
        Err(rejected) => return rejected.into_response(),
    };
    let result = sandbox.spotler_store().templists.delete(&id);
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => list_error(&refused),
    }
}

impl Sandbox {
    /// Every Spotler temporary list, oldest first: `{id, name, created_at, kind, contacts}`
    /// (contacts as their own external ids).
    pub fn spotler_templists(&self) -> Vec<Value> {
        self.spotler_store()
            .templists
            .all()
            .iter()
            .map(|list| serde_json::to_value(list).unwrap_or(Value::Null))
            .collect()
    }

    /// Adds a temporary list directly (as if another system or the Spotler UI had made it),
    /// e.g. to fill the account up to the cap in a test. `kind` is `API`, `IMPORT`, ...
    pub fn seed_spotler_templist(&self, id: &str, name: &str, kind: &str) -> Result<(), String> {
        let record = TempListRecord {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at: rfc3339_millis(now_utc()),
            kind: kind.to_owned(),
            contacts: Vec::new(),
        };
        self.spotler_store()
            .templists
            .create(record)
            .map_err(|e| format!("cannot seed templist: {e:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> TempListRecord {
        TempListRecord {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at: "2026-01-01T00:00:00.000Z".to_owned(),
            kind: "API".to_owned(),
            contacts: vec!["1".to_owned()],
        }
    }

    #[test]
    fn ids_and_names_are_unique_and_the_count_is_capped() {
        let mut store = TempListStore::default();
        assert_eq!(store.create(record("a", "A")), Ok(()));
        assert_eq!(store.create(record("a", "B")), Err(TempListError::IdExists));
        assert_eq!(store.create(record("b", "A")), Err(TempListError::NameExists));
        for n in 1..MAX_TEMPLISTS {
            assert_eq!(store.create(record(&format!("l{n}"), &format!("L{n}"))), Ok(()));
        }
        assert_eq!(store.create(record("over", "Over")), Err(TempListError::TooMany));
        assert_eq!(store.delete("a"), Ok(()));
        assert_eq!(store.delete("a"), Err(TempListError::NotFound));
        assert_eq!(store.create(record("over", "Over")), Ok(()));
    }

    #[test]
    fn adding_keeps_members_unique() {
        let mut store = TempListStore::default();
        store.create(record("a", "A")).unwrap();
        store.add("a", vec!["1".to_owned(), "2".to_owned()]).unwrap();
        assert_eq!(store.all()[0].contacts, ["1", "2"]);
        assert_eq!(store.add("nope", Vec::new()), Err(TempListError::NotFound));
    }
}
