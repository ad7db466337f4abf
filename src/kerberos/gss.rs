//! The Kerberos acceptor over MIT GSSAPI (`libgssapi`): credentials from the configured
//! keytab, one-leg SPNEGO / Kerberos handshakes, the client principal out.

use super::{Accepted, Rejected};
use crate::config::WindowsConfig;
use libgssapi::context::{SecurityContext, ServerCtx};
use libgssapi::credential::Cred;
use libgssapi::error::{Error as GssError, MajorFlags};
use libgssapi::oid::GSS_MECH_KRB5;
use libgssapi_sys as sys;
use std::ffi::CString;
use std::ptr;

/// DER body of the Kerberos principal name type, 1.2.840.113554.1.2.2.1.
static KRB5_NT_PRINCIPAL: [u8; 10] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01];
/// DER body of the host-based service name type, 1.2.840.113554.1.2.1.4.
static NT_HOSTBASED_SERVICE: [u8; 10] =
    [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x01, 0x04];

/// Accepts Kerberos tickets for the service principal with keys from the keytab. Holds a
/// credential handle that names the keytab; the keytab itself is read at each handshake.
pub struct Acceptor {
    cred: Cred,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

fn gss_error(major: u32, minor: u32) -> GssError {
    GssError {
        major: MajorFlags::from_bits_retain(major),
        minor,
    }
}

/// The routine-error field of a major status (RFC 2744 §3.9.1): a code, not flags.
fn routine_error(e: &GssError) -> u32 {
    e.major.bits() & (0xff << 16)
}

/// An imported GSSAPI name, released on drop.
struct OwnedName(sys::gss_name_t);

impl Drop for OwnedName {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: the name came from gss_import_name and is released once.
        unsafe { sys::gss_release_name(&mut minor, &mut self.0) };
    }
}

/// `HTTP/host@REALM` as that exact Kerberos principal; `HTTP/host` as the host-based service
/// `HTTP@host`, which matches the host's key in any realm of the keytab.
fn import_name(principal: &str) -> Result<OwnedName, String> {
    let (text, kind): (String, &'static [u8; 10]) = if principal.contains('@') {
        (principal.to_string(), &KRB5_NT_PRINCIPAL)
    } else {
        (principal.replacen('/', "@", 1), &NT_HOSTBASED_SERVICE)
    };
    let mut oid = sys::gss_OID_desc {
        length: kind.len() as u32,
        elements: kind.as_ptr() as *mut std::ffi::c_void,
    };
    let mut buf = sys::gss_buffer_desc {
        length: text.len(),
        value: text.as_ptr() as *mut std::ffi::c_void,
    };
    let mut name: sys::gss_name_t = ptr::null_mut();
    let mut minor = 0;
    // SAFETY: buffer and OID point at live memory for the call; GSSAPI copies what it keeps.
    let major = unsafe { sys::gss_import_name(&mut minor, &mut buf, &mut oid, &mut name) };
    if major != 0 {
        return Err(format!(
            "service_principal `{principal}`: {}",
            gss_error(major, minor)
        ));
    }
    Ok(OwnedName(name))
}

impl Acceptor {
    /// Acquires accept credentials from the keytab (MIT `gss_acquire_cred_from`, so each
    /// daemon names its own keytab rather than sharing `KRB5_KTNAME`). Fails when the keytab
    /// cannot be read or has no key for the service principal.
    pub fn new(cfg: &WindowsConfig) -> Result<Acceptor, String> {
        let keytab = std::fs::canonicalize(&cfg.keytab)
            .map_err(|e| format!("windows.keytab {}: {e}", cfg.keytab.display()))?;
        std::fs::File::open(&keytab)
            .map_err(|e| format!("windows.keytab {}: {e}", keytab.display()))?;
        let name = cfg
            .service_principal
            .as_deref()
            .map(import_name)
            .transpose()?;
        let key = CString::new("keytab").map_err(|e| e.to_string())?;
        let value = CString::new(format!("FILE:{}", keytab.display()))
            .map_err(|_| "windows.keytab: the path holds a NUL byte".to_string())?;
        let mut element = sys::gss_key_value_element_desc {
            key: key.as_ptr(),
            value: value.as_ptr(),
        };
        let store = sys::gss_key_value_set_desc {
            count: 1,
            elements: &mut element,
        };
        let mut cred: sys::gss_cred_id_t = ptr::null_mut();
        let mut minor = 0;
        // SAFETY: every pointer is valid for the call; the credential returned is owned by
        // us and handed to `Cred`, which releases it.
        let major = unsafe {
            sys::gss_acquire_cred_from(
                &mut minor,
                name.as_ref().map_or(ptr::null_mut(), |n| n.0),
                sys::_GSS_C_INDEFINITE,
                ptr::null_mut(),
                sys::GSS_C_ACCEPT as sys::gss_cred_usage_t,
                &store,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if major != 0 {
            return Err(format!(
                "windows: no accept credentials for {} in {}: {}",
                cfg.service_principal.as_deref().unwrap_or("any principal"),
                keytab.display(),
                gss_error(major, minor)
            ));
        }
        // SAFETY: `cred` is a fresh handle that nothing else owns.
        let cred = unsafe { Cred::from_c(cred) };
        Ok(Acceptor { cred })
    }

    /// One handshake step. Kerberos (alone or inside SPNEGO) completes in one; anything that
    /// asks for another round trip is not Kerberos and is refused. Blocking (keytab and
    /// replay-cache files): call from a blocking thread.
    pub fn accept(&self, token: &[u8]) -> Result<Accepted, Rejected> {
        let mut ctx = ServerCtx::new(Some(self.cred.clone()));
        let reject = |e: GssError| {
            let text = e.to_string();
            if routine_error(&e) == sys::_GSS_S_DEFECTIVE_TOKEN {
                Rejected::Malformed(format!("the Negotiate token is malformed: {text}"))
            } else {
                Rejected::Refused(format!("the Kerberos ticket was not accepted: {text}"))
            }
        };
        let out = ctx.step(token, None).map_err(reject)?;
        if !ctx.is_complete() {
            return Err(Rejected::Refused(
                "the Negotiate exchange needs more than one round trip, which only NTLM does; \
                 NTLM is not accepted, sign in with Kerberos"
                    .into(),
            ));
        }
        let info = ctx.info().map_err(reject)?;
        if info.mechanism != GSS_MECH_KRB5 {
            return Err(Rejected::Refused(format!(
                "only Kerberos is accepted, not mechanism {}",
                info.mechanism
            )));
        }
        Ok(Accepted {
            principal: info.source_name.to_string(),
            mutual_token: out.map(|b| b.to_vec()),
        })
    }
}
