//! What the portal's forms and pages accept, over HTTP on both backends: text with control
//! characters where one line is expected, form bodies that are not UTF-8, fields given twice,
//! and query parameters a page does not take or cannot read. Each is refused with an HTML 400
//! page before anything is recorded or done.

use auditex::store::users::PortalRole;
use reqwest::StatusCode;
use reqwest::header;

use super::{
    ADMIN_EMAIL, Browser, FormFields, LEGAL_BASES, OFFICER_EMAIL, Page, SUBJECT, audited_actions,
    erasure_records, start,
};
use crate::support::{Backend, backend_tests};

backend_tests!(
    an_invitation_whose_email_holds_a_control_character_is_refused_before_anything_is_recorded,
    an_api_key_label_with_control_characters_or_invalid_utf8_is_refused_and_no_key_is_created,
    a_form_with_a_field_given_twice_is_refused_with_an_html_page_and_nothing_is_done,
    bad_query_parameters_are_refused_with_an_html_page_naming_them,
);

impl Browser {
    /// Posts `body` as it is (already form-encoded, possibly not UTF-8 once decoded).
    async fn post_raw(&mut self, path: &str, body: &str) -> Page {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.to_owned());
        self.send(request).await
    }
}

/// An HTML page answering 400 that says `says`.
#[track_caller]
fn assert_refused(page: &Page, says: &str, what: &str) {
    page.assert_status(StatusCode::BAD_REQUEST, what);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{what}: an HTML page, not {:?}: {}",
        page.header("content-type"),
        page.body
    );
    assert!(
        page.body.contains(says),
        "{what}: says {says:?}: {}",
        page.body
    );
}

async fn an_invitation_whose_email_holds_a_control_character_is_refused_before_anything_is_recorded(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = admin.csrf().await;
    for (what, email) in [
        ("a NUL", "x%00@a.example"),
        ("a tab", "x%09@a.example"),
        ("a start of heading", "x%01@a.example"),
        ("an escape", "x%1B@a.example"),
        ("a delete", "x%7F@a.example"),
        ("a C1 control", "x%C2%85@a.example"),
    ] {
        let page = admin
            .post_raw("/users", &format!("csrf={csrf}&email={email}&role=auditor"))
            .await;
        assert_refused(&page, "That is not an email address.", what);
    }
    assert_eq!(
        audited_actions(&server.store, &server.tenant).await,
        ["sign_in"],
        "nothing recorded but the sign-in"
    );
    assert_eq!(
        server
            .store
            .users(&server.tenant)
            .await
            .expect("users")
            .len(),
        1,
        "no account created"
    );
    server.stop().await;
}

async fn an_api_key_label_with_control_characters_or_invalid_utf8_is_refused_and_no_key_is_created(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = admin.csrf().await;
    for (what, label, says) in [
        (
            "a NUL",
            "x%00y",
            "The label must not contain control characters",
        ),
        (
            "an ANSI escape and a line break",
            "a%01%1b%5B31mb%0Ac",
            "The label must not contain control characters",
        ),
        (
            "a tab",
            "a%09b",
            "The label must not contain control characters",
        ),
        (
            "invalid UTF-8",
            "a%ff%fe",
            "The field label is not UTF-8 text",
        ),
    ] {
        let page = admin
            .post_raw(
                "/api-keys",
                &format!("csrf={csrf}&role=read&label={label}&expires_in_days="),
            )
            .await;
        assert_refused(&page, says, what);
    }
    assert!(
        server
            .store
            .api_keys(&server.tenant)
            .await
            .expect("keys")
            .is_empty(),
        "no key created"
    );
    assert_eq!(
        audited_actions(&server.store, &server.tenant).await,
        ["sign_in"],
        "nothing recorded but the sign-in"
    );
    // A label of plain text (with letters beyond ASCII) is still accepted.
    let created = admin
        .post_raw(
            "/api-keys",
            &format!("csrf={csrf}&role=read&label=Z%C3%BCrich+pipeline&expires_in_days="),
        )
        .await;
    created.assert_status(StatusCode::CREATED, "a plain label");
    server.stop().await;
}

async fn a_form_with_a_field_given_twice_is_refused_with_an_html_page_and_nothing_is_done(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let first = server.append_personal_decision(tenant, SUBJECT).await;
    let other = server.append_personal_decision(tenant, "subj-0815").await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let csrf = officer.csrf().await;
    let basis = LEGAL_BASES[1];
    let twice: Vec<(&str, &str, FormFields)> = vec![
        (
            "the erase form's subject",
            "/subjects/erase",
            vec![
                ("csrf", &csrf),
                ("subject_ref", SUBJECT),
                ("subject_ref", "subj-0815"),
                ("scope", "subject"),
                ("legal_basis", basis),
                ("reason", "The customer withdrew consent"),
                ("confirm", SUBJECT),
            ],
        ),
        (
            "the erase form's confirmation",
            "/subjects/erase",
            vec![
                ("csrf", &csrf),
                ("subject_ref", SUBJECT),
                ("scope", "subject"),
                ("legal_basis", basis),
                ("reason", "The customer withdrew consent"),
                ("confirm", SUBJECT),
                ("confirm", "subj-0815"),
            ],
        ),
        (
            "the erase form's token",
            "/subjects/erase",
            vec![
                ("csrf", &csrf),
                ("csrf", &csrf),
                ("subject_ref", SUBJECT),
                ("scope", "subject"),
                ("legal_basis", basis),
                ("reason", "The customer withdrew consent"),
                ("confirm", SUBJECT),
            ],
        ),
        (
            "the hold form's reason",
            "/subjects/hold",
            vec![
                ("csrf", &csrf),
                ("subject_ref", SUBJECT),
                ("reason", "Litigation 2026-17"),
                ("reason", "something else"),
            ],
        ),
        (
            "the lift form's hold",
            "/subjects/hold/lift",
            vec![
                ("csrf", &csrf),
                ("subject_ref", SUBJECT),
                ("hold_seq", "1"),
                ("hold_seq", "2"),
                ("reason", "Settled"),
            ],
        ),
        (
            "the integrity form's token",
            "/integrity/start",
            vec![("csrf", &csrf), ("csrf", &csrf)],
        ),
        (
            "the sign-out form's token",
            "/sign-out",
            vec![("csrf", &csrf), ("csrf", &csrf)],
        ),
    ];
    for (what, path, form) in &twice {
        let page = officer.post(path, form).await;
        assert_refused(&page, "is given more than once", what);
    }
    assert_eq!(
        (
            server.stored_fields(tenant, first).await,
            server.stored_fields(tenant, other).await
        ),
        (
            vec!["email".to_owned(), "full_name".to_owned()],
            vec!["email".to_owned(), "full_name".to_owned()]
        ),
        "nothing erased"
    );
    assert!(
        erasure_records(store, tenant).await.is_empty(),
        "no erasure"
    );
    assert_eq!(
        audited_actions(store, tenant).await,
        ["sign_in"],
        "nothing recorded but the sign-in: the officer is still signed in"
    );

    // A form whose fields all deserialize into one struct: before, a raw JSON 422.
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = admin.csrf().await;
    let page = admin
        .post(
            "/users",
            &[
                ("csrf", &csrf),
                ("email", "a@acme.test"),
                ("email", "b@acme.test"),
                ("role", "auditor"),
            ],
        )
        .await;
    assert_refused(
        &page,
        "The field email is given more than once",
        "the invitation",
    );
    assert_eq!(store.users(tenant).await.expect("users").len(), 2);
    server.stop().await;
}

async fn bad_query_parameters_are_refused_with_an_html_page_naming_them(backend: Backend) {
    let server = start(&backend, false).await;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    for (path, named) in [
        ("/decisions?cursor=zzz", "cursor"),
        ("/decisions?limit=-1", "limit"),
        ("/decisions?after=zzz", "after"),
        ("/decisions?after=-1", "after"),
        ("/decisions?outcome=a&outcome=b", "outcome"),
        ("/decisions?model_id=%FF", "model_id"),
        ("/integrity?cursor=zzz", "cursor"),
        ("/subjects?subject_ref=x&after=zzz", "after"),
        ("/subjects?subject_ref=x&subject_ref=y", "subject_ref"),
        ("/subjects/package?format=html", "subject_ref"),
        ("/oversight?after=zzz", "after"),
        ("/models?cursor=zzz", "cursor"),
        ("/account/sessions?cursor=zzz", "cursor"),
        ("/subjects?subject_ref=%00", "subject_ref"),
        ("/decisions?outcome=a%00b", "outcome"),
    ] {
        let page = officer.get(path).await;
        assert_refused(&page, &format!("The parameter {named} "), path);
    }
    // The pages' own links still work.
    for path in [
        "/decisions?model_id=&model_version=&outcome=&subject_ref=&from=&until=",
        "/decisions?after=0",
        "/integrity?done=started",
        "/subjects",
    ] {
        officer.get(path).await.assert_status(StatusCode::OK, path);
    }
    server.stop().await;
}
