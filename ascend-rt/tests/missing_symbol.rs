//! A table whose resolver lacks a symbol: the call that needs it fails with
//! an error naming it, nothing panics, and everything else keeps working.
#![cfg(feature = "mock")]

use std::ffi::c_void;

use ascend_rt::{Context, DeviceBuffer, Error};

fn without_memset_async(name: &str) -> *mut c_void {
    if name == "aclrtMemsetAsync" {
        std::ptr::null_mut()
    } else {
        ascend_mock::resolve(name)
    }
}

#[test]
fn a_missing_symbol_is_an_error_naming_it() {
    let api = ascend_sys::Api::from_resolver(without_memset_async, "mock without aclrtMemsetAsync");
    ascend_rt::init_with_api(api).unwrap();
    assert!(matches!(
        ascend_rt::backend_kind(),
        Some(ascend_rt::BackendKind::Custom(_))
    ));
    let ctx = Context::new(0).unwrap();
    let stream = ctx.new_stream().unwrap();
    let mut buf = DeviceBuffer::from_host(&ctx, &[1u8; 16]).unwrap();
    let err = buf.memset_async(0, &stream).unwrap_err();
    match &err {
        Error::Load(ascend_sys::LoadError::MissingSymbol { symbol, library }) => {
            assert_eq!(*symbol, "aclrtMemsetAsync");
            assert_eq!(library, "mock without aclrtMemsetAsync");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("aclrtMemsetAsync"), "{err}");
    // The rest of the table is unaffected.
    buf.memset(2).unwrap();
    assert_eq!(buf.to_vec().unwrap(), [2u8; 16]);
    // A second backend cannot replace the first.
    let again = ascend_rt::init(ascend_rt::Backend::Mock).unwrap_err();
    assert!(
        matches!(again, Error::BackendAlreadyChosen { .. }),
        "{again}"
    );
}
