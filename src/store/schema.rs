//! The diesel schema: one table definition per table in migrations/.
// Timestamps are BIGINT milliseconds since the Unix epoch on every backend (rows hold them as
// `timestamp::Timestamp`).

diesel::table! {
    users (id) {
        id -> Text,
        directory_id -> Text,
        external_id -> Text,
        username -> Text,
        display_name -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        email -> Nullable<Text>,
        is_admin -> Bool,
        is_enabled -> Bool,
        password_hash -> Nullable<Text>,
        created_at -> BigInt,
        last_login_at -> Nullable<BigInt>,
        access_key_validity_minutes -> Nullable<BigInt>,
        suspended_at -> Nullable<BigInt>,
        scim_external_id -> Nullable<Text>,
        session_duration_minutes -> Nullable<BigInt>,
        is_service_account -> Bool,
        manager_id -> Nullable<Text>,
        scim_email_primary -> Bool,
        suspended_by_signal -> Nullable<Text>,
        keys_lapsed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    access_keys (id) {
        id -> Text,
        key_id -> Text,
        user_id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        password_hash -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        expires_at -> Nullable<BigInt>,
        scope -> Text,
        allowed_networks -> Nullable<Text>,
        lookup_hash -> Nullable<Text>,
        previous_password_hash -> Nullable<Text>,
        previous_lookup_hash -> Nullable<Text>,
        previous_until -> Nullable<BigInt>,
        rotated_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        access_key_id -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    options (path) {
        path -> Text,
        value -> Text,
        updated_at -> BigInt,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> BigInt,
        action -> Text,
        outcome -> Text,
        actor_user_id -> Nullable<Text>,
        actor -> Nullable<Text>,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        target -> Nullable<Text>,
        detail -> Nullable<Text>,
        remote_addr -> Nullable<Text>,
    }
}

diesel::table! {
    job_runs (id) {
        id -> BigInt,
        job -> Text,
        replica -> Text,
        started_at -> BigInt,
        finished_at -> Nullable<BigInt>,
        outcome -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> BigInt,
        directory_id -> Text,
        started_at -> BigInt,
        finished_at -> Nullable<BigInt>,
        dry_run -> Bool,
        run_trigger -> Text,
        actor -> Nullable<Text>,
        replica -> Text,
        status -> Text,
        read_count -> BigInt,
        matched -> BigInt,
        renamed -> BigInt,
        removed -> BigInt,
        suspended -> BigInt,
        restored -> BigInt,
        admin_changes -> BigInt,
        last_logins -> BigInt,
        error -> Nullable<Text>,
        plan -> Nullable<Text>,
        approves_run_id -> Nullable<BigInt>,
        approved_by -> Nullable<Text>,
        approved_at -> Nullable<BigInt>,
        unread_controllers -> Nullable<Text>,
    }
}

diesel::table! {
    oidc_logins (state_hash) {
        state_hash -> Text,
        directory_id -> Text,
        nonce -> Text,
        pkce_verifier -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        binding_hash -> Nullable<Text>,
        client_addr -> Nullable<Text>,
    }
}

diesel::table! {
    scim_tokens (id) {
        id -> Text,
        directory_id -> Text,
        token_hash -> Text,
        label -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    event_tokens (id) {
        id -> Text,
        token_hash -> Text,
        label -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        directory_ids -> Nullable<Text>,
    }
}

diesel::table! {
    key_warnings (subject, lapse_at, channel) {
        subject -> Text,
        lapse_at -> BigInt,
        channel -> Text,
        sent_at -> BigInt,
    }
}

diesel::table! {
    revocations (id) {
        id -> BigInt,
        at -> BigInt,
        subject -> Text,
    }
}

diesel::table! {
    change_feeds (directory_id) {
        directory_id -> Text,
        cookie -> Nullable<Text>,
        cookie_at -> Nullable<BigInt>,
        replica -> Nullable<Text>,
        connected_at -> Nullable<BigInt>,
        last_event_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        reconnects -> BigInt,
        tripped_at -> Nullable<BigInt>,
        tripped_reason -> Nullable<Text>,
    }
}

diesel::table! {
    signal_suspensions (id) {
        id -> BigInt,
        directory_id -> Text,
        user_id -> Text,
        at -> BigInt,
        signal -> Text,
    }
}

diesel::table! {
    ssf_seen (issuer, jti) {
        issuer -> Text,
        jti -> Text,
        seen_at -> BigInt,
    }
}

diesel::table! {
    key_uses (key_row_id, address) {
        key_row_id -> Text,
        address -> Text,
        user_agent -> Nullable<Text>,
        at -> BigInt,
    }
}

diesel::table! {
    key_use_days (day) {
        day -> BigInt,
        uses -> BigInt,
    }
}

diesel::joinable!(access_keys -> users (user_id));
diesel::joinable!(key_uses -> access_keys (key_row_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(sessions -> access_keys (access_key_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    access_keys,
    sessions,
    options,
    audit_events,
    job_runs,
    sync_runs,
    oidc_logins,
    scim_tokens,
    key_warnings,
    revocations,
    event_tokens,
    change_feeds,
    signal_suspensions,
    ssf_seen,
    key_uses,
    key_use_days
);
