"""pytools.names: decoders from kernel ids to names."""

import pytest

from pytools import names
from pytools.names import c_string, parse_device


def test_c_string_stops_at_nul_and_tolerates_bad_utf8():
    assert c_string(b"bash\0\0junk") == "bash"
    assert c_string(b"tr\xffue\0") == "tr\ufffdue"
    assert c_string(b"") == ""


def test_kernel_dev_round_trip():
    dev = names.kernel_dev(254, 3)
    assert dev == 254 << 20 | 3 and names.split_kernel_dev(dev) == (254, 3)


def test_device_name_from_sysfs(tmp_path):
    (tmp_path / "254:0").mkdir()
    (tmp_path / "254:0" / "uevent").write_text("MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n")
    assert names.device_name(names.kernel_dev(254, 0), str(tmp_path)) == "vda"
    assert names.device_name(names.kernel_dev(0, 27), str(tmp_path),
                             str(tmp_path / "none")) == "0:27"


def test_device_name_where_sys_dev_block_is_masked(tmp_path):
    # podman masks /sys/dev/block in containers; /sys/class/block is there.
    masked, klass = tmp_path / "dev-block", tmp_path / "class-block"
    masked.mkdir()
    for name, dev in (("loop0", "7:0"), ("vda", "254:0"), ("vda1", "254:1")):
        (klass / name).mkdir(parents=True)
        (klass / name / "dev").write_text(dev + "\n")
    assert names.device_name(names.kernel_dev(254, 1), str(masked), str(klass)) == "vda1"
    assert names.device_name(names.kernel_dev(0, 40), str(masked), str(klass)) == "0:40"


MOUNTINFO = """\
87 60 0:40 / / ro,relatime - overlay overlay rw
98 87 254:0 /run/containers/x/hostname /etc/hostname ro - ext4 /dev/vda rw
100 87 254:0 /usr/src /host/usr/src ro,relatime - ext4 /dev/vda rw
101 87 254:0 /var/log/pods /var/log/pods ro,relatime - ext4 /dev/vda rw
29 1 254:0 / /srv/my\\040disk rw - ext4 /dev/vda rw
"""


def test_mounts_of_a_device_root_first_then_in_mount_order():
    assert names.mounts_of(names.kernel_dev(254, 0), MOUNTINFO) == [
        "/srv/my disk", "/etc/hostname", "/host/usr/src", "/var/log/pods"]
    assert names.mounts_of(names.kernel_dev(8, 1), MOUNTINFO) == []


def test_file_names_fall_back_to_dev_and_inode_and_cache():
    calls = []
    file_names = names.FileNames(lambda dev, ino: calls.append(ino) or (None if ino == 2 else "/a"))
    assert file_names((names.kernel_dev(8, 1), 1)) == "/a"
    assert file_names((names.kernel_dev(8, 1), 2)) == "8:1:2"
    file_names((names.kernel_dev(8, 1), 2))
    assert calls == [1, 2]


def test_parse_device_forms():
    assert parse_device("8:16") == names.kernel_dev(8, 16)
    with pytest.raises(ValueError):
        parse_device("8:x")
    with pytest.raises(ValueError):
        parse_device("no-such-disk-xyz")
    with pytest.raises(ValueError):
        parse_device("/dev/null")  # a character device


def test_dev_text():
    assert names.dev_text(names.kernel_dev(259, 1)) == "259:1"
