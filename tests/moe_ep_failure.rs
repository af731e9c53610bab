//! A rank that fails part-way through an expert-parallel pass: its own test binary, so that
//! the mock gets small devices and a short HCCL timeout before it starts.

use std::time::{Duration, Instant};

use ascend::moe::ep::ExpertParallelLayer;
use ascend::moe::{MoeConfig, MoeWeights, random_tokens};
use ascend_rt::{AclCode, Backend, DeviceBuffer};

/// Rank 3 runs out of device memory in its first step, so it never joins the counts'
/// all-gather; its peers' all-gather times out. The pass must end with rank 3's error (the
/// cause), soon after the timeout, and no rank may read the all-gather's unwritten output.
#[test]
fn a_rank_out_of_memory_fails_the_pass_with_its_error_instead_of_hanging() {
    ascend_mock::configure(ascend_mock::Config {
        devices: 4,
        memory_per_device: 256 << 20,
        ..ascend_mock::Config::default()
    })
    .expect("the mock is not initialised yet in this process");
    ascend_mock::hccl::set_default_timeout(Some(Duration::from_millis(500)));
    ascend_rt::init(Backend::Mock).unwrap();

    // 2048 home tokens a rank: each rank's input (1 MiB + 4 KiB) is a large pool block in a
    // segment of its own, so the pass's first small output needs a new segment.
    let config = MoeConfig::small().with_tokens(4 * 2056);
    let w = MoeWeights::random(&config, 1).unwrap();
    let x = random_tokens(&config, 2);
    let ep = ExpertParallelLayer::<f32>::with_ranks(&w, 4).unwrap();
    let xs = ep.scatter(&x).unwrap();

    // Another user takes nearly all of device 3's free memory.
    let ctx3 = ep.stream(3).unwrap().context();
    let free = ctx3.memory_info().unwrap().free;
    // SAFETY: the hog is never read or written; it only holds the memory.
    let hog = unsafe { DeviceBuffer::<u8>::alloc(ctx3, free - (64 << 10)) }.unwrap();

    let started = Instant::now();
    let err = ep.forward(&xs).expect_err("rank 3 cannot allocate");
    let took = started.elapsed();
    assert_eq!(
        err.acl_code(),
        Some(AclCode::ACL_ERROR_RT_MEMORY_ALLOCATION),
        "{err}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    drop(hog);
}
