"""The user, group and umask keys: checks at load (TOML and supervise()), and
the steps a child takes, in order, without running them."""

import grp
import os
import pwd
import textwrap

import pytest

from corral import privileges
from corral.config import load
from corral.errors import ConfigError
from corral.settings import Bad, supervision
from corral.spec import ServiceSpec

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrgid(NOBODY.pw_gid)


def check(**table):
    return supervision("svc", table, "/")


def bad(**table):
    with pytest.raises(Bad) as info:
        check(**table)
    return info.value


def load_toml(tmp_path, body):
    path = tmp_path / "corral.toml"
    path.write_text("[services.svc]\ncommand = [\"/bin/true\"]\n" + textwrap.dedent(body))
    return load(path)


def toml_error(tmp_path, body):
    with pytest.raises(ConfigError) as info:
        load_toml(tmp_path, body)
    err = info.value
    assert "\n" not in str(err)
    assert str(tmp_path / "corral.toml") in str(err) and err.service == "svc"
    return err


# -- defaults ------------------------------------------------------------------

def test_defaults_keep_the_masters_ids_and_umask():
    settings = check()
    assert settings["user"] is None and settings["group"] is None and settings["umask"] is None
    spec = ServiceSpec(name="svc", command=("/bin/true",), **settings)
    assert privileges.account(spec) is None
    assert privileges.steps(spec) == []
    assert privileges.user_env(spec) == {}


# -- user and group ------------------------------------------------------------

@pytest.mark.parametrize("value", ["nobody", NOBODY.pw_uid, str(NOBODY.pw_uid)])
def test_user_by_name_or_id_takes_the_users_primary_group(value):
    settings = check(user=value)
    assert settings["user"] == NOBODY.pw_uid
    assert settings["group"] == NOBODY.pw_gid


@pytest.mark.parametrize("value", [NOGROUP.gr_name, NOGROUP.gr_gid, str(NOGROUP.gr_gid)])
def test_group_by_name_or_id(value):
    settings = check(user="nobody", group=value)
    assert settings["group"] == NOGROUP.gr_gid


def test_group_alone_leaves_the_user():
    settings = check(group="root")
    assert settings["user"] is None and settings["group"] == 0


def test_a_given_group_wins_over_the_primary_one():
    assert check(user="nobody", group="root")["group"] == 0


def test_numeric_uid_without_passwd_entry_needs_a_group():
    uid = _free_id(pwd.getpwuid)
    assert check(user=uid, group=NOGROUP.gr_gid)["user"] == uid
    err = bad(user=uid)
    assert err.key == "user" and f"uid {uid} has no passwd entry" in err.message


def test_numeric_gid_without_group_entry_is_taken_as_is():
    gid = _free_id(grp.getgrgid)
    assert check(user="nobody", group=gid)["group"] == gid


def test_unknown_user_and_group_are_config_errors_naming_the_key(tmp_path):
    err = toml_error(tmp_path, 'user = "no-such-user-here"\n')
    assert err.key == "user"
    assert "unknown user 'no-such-user-here'" in str(err)
    assert "service 'svc': key 'user'" in str(err)
    err = toml_error(tmp_path, 'user = "nobody"\ngroup = "no-such-group-here"\n')
    assert err.key == "group" and "unknown group 'no-such-group-here'" in str(err)


@pytest.mark.parametrize("key", ["user", "group"])
@pytest.mark.parametrize("value", [True, 1.5, -1, "", ["nobody"], 2**32 - 1, 2**40])
def test_bad_user_and_group_values(key, value):
    table = {key: value} if key == "user" else {"user": "nobody", key: value}
    err = bad(**table)
    assert err.key == key
    assert repr(value) in err.message


def test_only_root_may_switch_users(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    err = bad(user="nobody")
    assert err.key == "user" and err.message.startswith("needs root")
    err = bad(user=1000, group="nogroup")
    assert err.key == "group" and err.message.startswith("needs root")
    # Its own ids are fine.
    assert check(user=1000, group=1000)["user"] == 1000


def test_python_config_gets_the_same_checks(tmp_path):
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent("""
        import corral
        application = corral.Application("demo")
        corral.Service().supervise(user="nobody", umask="027").setServiceParent(application)
        """))
    spec = load(path).services[0]
    assert (spec.user, spec.group, spec.umask) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o027)
    path.write_text(textwrap.dedent("""
        import corral
        application = corral.Application("demo")
        corral.Service().supervise(user="no-such-user-here").setServiceParent(application)
        """))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.key == "user" and "unknown user" in str(info.value)


def test_names_and_ids_compare_equal_for_a_reload(tmp_path):
    by_name = load_toml(tmp_path, 'user = "nobody"\n').services[0]
    by_id = load_toml(tmp_path, f'user = {NOBODY.pw_uid}\ngroup = {NOBODY.pw_gid}\n').services[0]
    assert by_name == by_id
    other = load_toml(tmp_path, 'user = "nobody"\numask = "077"\n').services[0]
    assert other != by_name


# -- umask ---------------------------------------------------------------------

@pytest.mark.parametrize("value, mask", [
    ("022", 0o022), ("0o022", 0o022), ("0O077", 0o077), ("77", 0o077), ("0", 0),
    ("0777", 0o777), (0o027, 0o027), (0, 0), (18, 0o022),
])
def test_umask_values(value, mask):
    assert check(umask=value)["umask"] == mask


@pytest.mark.parametrize("value", ["", "0o", "8", "0x1f", "abc", "1000", "-022", " 022",
                                   -1, 0o1000, True, 2.0, ["022"]])
def test_bad_umask(value):
    err = bad(umask=value)
    assert err.key == "umask"
    assert repr(value) in err.message


def test_umask_in_toml(tmp_path):
    assert load_toml(tmp_path, "umask = 0o027\n").services[0].umask == 0o027
    assert load_toml(tmp_path, 'umask = "077"\n').services[0].umask == 0o077
    err = toml_error(tmp_path, 'umask = "999"\n')
    assert err.key == "umask" and "octal" in str(err)


# -- the child's steps -----------------------------------------------------------

def spec_of(**table):
    return ServiceSpec(name="svc", command=("/bin/true",), **check(**table))


def test_steps_go_groups_gid_uid_umask():
    plan = privileges.steps(spec_of(user="nobody", umask="077"))
    assert [(d, a) for d, a, *_ in plan] == [
        ("set the supplementary groups of nobody", os.initgroups),
        (f"set group {NOGROUP.gr_name}", os.setgid),
        ("set user nobody", os.setuid),
        ("set umask 077", os.umask),
    ]
    assert [args for _d, _a, *args in plan] == [
        ["nobody", NOBODY.pw_gid], [NOBODY.pw_gid], [NOBODY.pw_uid], [0o077]]


def test_steps_for_a_uid_without_entry_set_only_the_group():
    uid = _free_id(pwd.getpwuid)
    plan = privileges.steps(spec_of(user=uid, group=NOGROUP.gr_gid))
    assert plan[0] == (f"set the supplementary groups to [{NOGROUP.gr_name}]",
                       os.setgroups, [NOGROUP.gr_gid])
    assert plan[-1] == (f"set user {uid}", os.setuid, uid)
    assert privileges.user_env(spec_of(user=uid, group=NOGROUP.gr_gid)) == {
        "HOME": "/", "USER": str(uid), "LOGNAME": str(uid)}


def test_user_env():
    assert privileges.user_env(spec_of(user="nobody")) == {
        "HOME": NOBODY.pw_dir, "USER": "nobody", "LOGNAME": "nobody"}
    assert privileges.user_env(spec_of(group="nogroup")) == {}


def test_a_failed_step_is_named():
    plan = [("set user nobody", _fail_eperm)]
    with pytest.raises(privileges.PrivilegeError) as info:
        privileges.run_steps(plan)
    assert str(info.value) == "Unable to set user nobody: Operation not permitted"


def _fail_eperm():
    raise PermissionError(1, "Operation not permitted")


def _free_id(lookup):
    for number in range(54321, 64000):
        try:
            lookup(number)
        except KeyError:
            return number
    raise AssertionError("no free id")
