//! Virtual memory on the mock: reserve, map physical memory, copy through
//! the range, unmap and remap (contents follow the memory), Rust-side
//! argument checks, and runtime refusals surfacing as `Error::Acl`.
#![cfg(feature = "mock")]

mod common;

use std::sync::Arc;

use ascend_rt::memory::virtual_mem::granularity;
use ascend_rt::result::acl::memory::memcpy;
use ascend_rt::{Error, PhysicalMem, VirtualRange};
use ascend_sys::{ACL_MEMCPY_DEVICE_TO_HOST, ACL_MEMCPY_HOST_TO_DEVICE};

#[test]
fn map_copy_unmap_remap() {
    let ctx = common::ctx();
    let g = granularity(&ctx).unwrap();
    assert_eq!(g, 2 << 20);
    let mut range = VirtualRange::reserve(&ctx, 2 * g).unwrap();
    assert_eq!(range.size(), 2 * g);
    let a = Arc::new(PhysicalMem::new(&ctx, g).unwrap());
    let b = Arc::new(PhysicalMem::new(&ctx, g).unwrap());
    range.map(0, a.clone()).unwrap();
    range.map(g, b.clone()).unwrap();
    assert!(range.is_mapped(0, 2 * g));

    let src: Vec<u8> = (0..2 * g).map(|i| (i % 253) as u8).collect();
    let mut back = vec![0u8; 2 * g];
    // SAFETY: the range is mapped for 2 * g bytes; the host vectors hold as
    // many; the copies are synchronous.
    unsafe {
        memcpy(
            range.as_ptr(),
            2 * g,
            src.as_ptr().cast(),
            2 * g,
            ACL_MEMCPY_HOST_TO_DEVICE,
        )
        .unwrap();
        memcpy(
            back.as_mut_ptr().cast(),
            2 * g,
            range.as_ptr(),
            2 * g,
            ACL_MEMCPY_DEVICE_TO_HOST,
        )
        .unwrap();
    }
    assert_eq!(back, src);

    // Swap the two halves: each memory keeps its bytes.
    let a2 = range.unmap(0).unwrap();
    let b2 = range.unmap(g).unwrap();
    assert!(!range.is_mapped(0, 1));
    range.map(0, b2).unwrap();
    range.map(g, a2).unwrap();
    let mut first = vec![0u8; 16];
    // SAFETY: offset 0 is mapped (b, g bytes); `first` holds 16 bytes.
    unsafe {
        memcpy(
            first.as_mut_ptr().cast(),
            16,
            range.as_ptr(),
            16,
            ACL_MEMCPY_DEVICE_TO_HOST,
        )
        .unwrap();
    }
    assert_eq!(first, src[g..g + 16]);
    drop(range);
    drop((a, b));
}

#[test]
fn bad_arguments_are_refused() {
    let ctx = common::ctx();
    let g = granularity(&ctx).unwrap();
    assert!(matches!(
        PhysicalMem::new(&ctx, g + 1),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        PhysicalMem::new(&ctx, 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        VirtualRange::reserve(&ctx, 0),
        Err(Error::InvalidArgument { .. })
    ));
    let mut range = VirtualRange::reserve(&ctx, g).unwrap();
    let m = Arc::new(PhysicalMem::new(&ctx, g).unwrap());
    assert!(matches!(
        range.map(4096, m.clone()),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        range.map(g, m.clone()),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(range.unmap(0), Err(Error::InvalidArgument { .. })));
    range.map(0, m.clone()).unwrap();
    assert!(matches!(
        range.map(0, m.clone()),
        Err(Error::InvalidArgument { .. })
    ));
    // The same memory mapped into a second range: the runtime refuses it.
    let mut other = VirtualRange::reserve(&ctx, g).unwrap();
    match other.map(0, m.clone()) {
        Err(Error::Acl { .. }) => {}
        r => panic!("expected the runtime's refusal, got {r:?}"),
    }
}
