"""Compiler and test locations mapped back to repository paths (pure)."""

from __future__ import annotations

from pipeline.results.repo_paths import RepoPaths

FILES = ["kernel/chardev.c", "kernel/vexfs_main.c", "kernel/include/uapi/vexfs.h",
         "userspace/src/lib.rs", "userspace/tests/abi_c.rs", "kernel/rust/src/lib.rs",
         "tools/chardev.c"]


def test_container_copies_and_mounts_map_to_the_repository() -> None:
    paths = RepoPaths(FILES)
    assert paths("/work/kernel/vexfs_main.c:1163:2: error: x") == \
        "kernel/vexfs_main.c:1163:2: error: x"
    assert paths("/work/module/include/uapi/vexfs.h:12: note") == \
        "kernel/include/uapi/vexfs.h:12: note"
    assert paths("/src/userspace/tests/abi_c.rs:40:9") == "userspace/tests/abi_c.rs:40:9"
    assert paths("  --> tests/abi_c.rs:40:9") == "  --> userspace/tests/abi_c.rs:40:9"


def test_ambiguous_and_foreign_paths_are_left_alone() -> None:
    paths = RepoPaths(FILES)
    # two files end in chardev.c and in src/lib.rs: which one is not known
    assert paths("/work/module/chardev.c:66:5: error") == "/work/module/chardev.c:66:5: error"
    assert paths("src/lib.rs:3:1") == "src/lib.rs:3:1"
    # a kernel header is not a repository file even if a basename matched
    text = "/usr/src/linux-headers-6.1.0-50-common/include/linux/fs.h:12:3: note"
    assert paths(text) == text
    assert paths("make: *** [Makefile:17: modules] Error 2") == \
        "make: *** [Makefile:17: modules] Error 2"
    assert RepoPaths([])("/work/x.c:1") == "/work/x.c:1"


def test_a_unique_longer_suffix_wins() -> None:
    paths = RepoPaths(FILES)
    assert paths("/work/kernel/chardev.c:66:5") == "kernel/chardev.c:66:5"
    assert paths("/work/rust/src/lib.rs:9") == "kernel/rust/src/lib.rs:9"


def test_a_suites_messages_are_mapped_in_place() -> None:
    from junitparser import Failure, TestCase, TestSuite

    from pipeline.results.repo_paths import map_suite

    case = TestCase("build", classname="kmod-build/6.1")
    failure = Failure("/work/module/vexfs_main.c:12:3: error: x")
    failure.text = "/work/module/vexfs_main.c:12:3: error: x\n 12 | bad;"
    case.result = [failure]
    suite = TestSuite("kmod-build/6.1")
    suite.add_testcase(case)
    map_suite(suite, RepoPaths(FILES))
    assert case.result[0].message == "kernel/vexfs_main.c:12:3: error: x"
    assert case.result[0].text.startswith("kernel/vexfs_main.c:12:3: error: x\n")
