"""Keyframe schedules: frame counts, easing, hold, ping-pong, loops, cubic paths, landmarks and the dict/YAML form."""
import numpy as np
import pytest
import yaml

from ganbatch.jobs.keyframes import read_keyframes, schedule_from_dict
from ganbatch.targets.aus import NUM_AUS, au_index, expression_aus
from ganbatch.targets.landmarks import write_landmarks
from ganbatch.targets.schedule import (
    EASING_NAMES,
    EASINGS,
    Keyframe,
    Schedule,
    ScheduleError,
    expression_schedule,
)

NEUTRAL = np.zeros(NUM_AUS, dtype=np.float32)
HAPPY = expression_aus("happy")
AU12 = au_index("AU12")


def two_keyframes(easing, frames=21, start=NEUTRAL, end=HAPPY):
    return Schedule(keyframes=[Keyframe(frame=0, value=start, easing=easing), Keyframe(frame=frames - 1, value=end)],
                    frames=frames)


def test_easing_functions_run_from_0_to_1_monotonically():
    t = np.linspace(0, 1, 101)
    for name in ("linear", "ease-in-out"):
        weights = EASINGS[name](t)
        assert weights[0] == 0 and weights[-1] == 1 and np.all(np.diff(weights) >= 0)
    assert EASINGS["ease-in-out"](0.5) == pytest.approx(0.5)
    assert np.all(EASINGS["hold"](t[:-1]) == 0) and EASINGS["hold"](1.0) == 1
    assert set(EASING_NAMES) == {"linear", "ease-in-out", "cubic", "hold"}


@pytest.mark.parametrize("fps, duration, expected", [(25, 2.0, 50), (30, 1.5, 45), (24, 0.5, 12), (10, 0.1, 1)])
def test_frame_count_from_fps_and_duration(fps, duration, expected):
    schedule = Schedule(keyframes=[Keyframe(at=0.0, value=HAPPY)], fps=fps, duration=duration)
    assert schedule.num_frames == expected and len(schedule.targets()) == expected


def test_frame_count_from_frames_or_the_last_keyframe():
    assert Schedule(keyframes=[Keyframe(frame=0, value=HAPPY)], frames=7).num_frames == 7
    ends_at_one_second = [Keyframe(frame=0, value=NEUTRAL), Keyframe(at=1.0, value=HAPPY)]
    assert Schedule(keyframes=ends_at_one_second, fps=20).num_frames == 21
    with pytest.raises(ScheduleError, match="not both"):
        Schedule(keyframes=[Keyframe(frame=0, value=HAPPY)], frames=7, duration=1.0)


@pytest.mark.parametrize("easing", EASING_NAMES)
def test_endpoints_are_the_keyframe_values(easing):
    targets = two_keyframes(easing).targets()
    assert targets.shape == (21, NUM_AUS) and targets.dtype == np.float32
    np.testing.assert_array_equal(targets[0], NEUTRAL)
    np.testing.assert_allclose(targets[-1], HAPPY, atol=1e-6)


@pytest.mark.parametrize("easing", ["linear", "ease-in-out", "cubic"])
def test_eased_paths_between_two_keyframes_are_monotone(easing):
    rising = two_keyframes(easing).targets()
    falling = two_keyframes(easing, start=HAPPY, end=NEUTRAL).targets()
    assert np.all(np.diff(rising, axis=0) >= -1e-6) and np.all(np.diff(falling, axis=0) <= 1e-6)
    assert np.all(np.diff(rising[:, AU12]) > 0) and np.all(np.diff(falling[:, AU12]) < 0)


def test_linear_midpoint_and_ease_in_out_starts_slowly():
    linear = two_keyframes("linear").targets()
    np.testing.assert_allclose(linear[10], HAPPY / 2, atol=1e-6)
    eased = two_keyframes("ease-in-out").targets()
    assert eased[1, AU12] < linear[1, AU12] and eased[10, AU12] == pytest.approx(linear[10, AU12], abs=1e-6)


def test_hold_keeps_the_value_until_the_next_keyframe():
    schedule = Schedule(keyframes=[
        Keyframe(frame=0, value=NEUTRAL),
        Keyframe(frame=4, value=HAPPY, easing="hold"),
        Keyframe(frame=9, value=NEUTRAL),
    ], frames=12)
    targets = schedule.targets()
    np.testing.assert_array_equal(targets[4:9], np.broadcast_to(HAPPY, (5, NUM_AUS)))
    np.testing.assert_array_equal(targets[9:], np.zeros((3, NUM_AUS)))


def test_values_hold_before_the_first_and_after_the_last_keyframe():
    keyframes = [Keyframe(frame=3, value=HAPPY), Keyframe(frame=6, value=NEUTRAL)]
    targets = Schedule(keyframes=keyframes, frames=10).targets()
    np.testing.assert_array_equal(targets[:4], np.broadcast_to(HAPPY, (4, NUM_AUS)))
    np.testing.assert_array_equal(targets[6:], np.zeros((4, NUM_AUS)))


def test_pingpong_is_symmetric():
    schedule = Schedule(keyframes=two_keyframes("ease-in-out", frames=10).keyframes, frames=10, pingpong=True)
    targets = schedule.targets()
    assert schedule.num_frames == len(targets) == 19
    np.testing.assert_array_equal(targets, targets[::-1])
    np.testing.assert_allclose(targets[9], HAPPY, atol=1e-6)


def test_loops_repeat_the_path():
    keyframes = two_keyframes("linear", frames=5).keyframes
    path = Schedule(keyframes=keyframes, frames=5).targets()
    looped = Schedule(keyframes=keyframes, frames=5, loop=3)
    np.testing.assert_array_equal(looped.targets(), np.concatenate([path] * 3))
    bounced = Schedule(keyframes=keyframes, frames=5, pingpong=True, loop=2)
    cycle = np.concatenate([path, path[-2::-1]])
    assert bounced.num_frames == 2 * 8 + 1
    np.testing.assert_array_equal(bounced.targets(), np.concatenate([cycle[:-1], cycle]))


def test_cubic_does_not_overshoot_monotone_keyframes():
    levels = [0.0, 1.0, 1.0, 4.0, 5.0]
    frames = [0, 3, 15, 19, 30]
    keyframes = [Keyframe(frame=f, value=np.full(NUM_AUS, v), easing="cubic") for f, v in zip(frames, levels)]
    path = Schedule(keyframes=keyframes).targets()[:, 0]
    assert np.all(np.diff(path) >= -1e-6) and path.min() >= 0 and path.max() <= 5
    np.testing.assert_allclose(path[3:16], 1.0, atol=1e-6)  # a plateau of equal keyframes stays flat
    np.testing.assert_allclose(path[frames], levels, atol=1e-6)


def test_cubic_stays_between_the_keyframes_around_a_peak():
    peak = [(0, 0.0), (4, 5.0), (20, 0.5)]
    keyframes = [Keyframe(frame=f, value=np.full(NUM_AUS, v), easing="cubic") for f, v in peak]
    path = Schedule(keyframes=keyframes).targets()[:, 0]
    assert path.max() <= 5.0 + 1e-6 and path.min() >= -1e-6
    assert np.all(np.diff(path[:5]) >= 0) and np.all(np.diff(path[4:]) <= 1e-6)


def test_landmark_paths_interpolate_point_positions():
    start = np.random.default_rng(1).uniform(20, 100, size=(68, 2)).astype(np.float32)
    end = start + np.array([10.0, -4.0], dtype=np.float32)
    schedule = Schedule(keyframes=[Keyframe(frame=0, value=start), Keyframe(frame=10, value=end)], frames=11,
                        input_first=True)
    targets = schedule.targets()
    assert targets.shape == (11, 68, 2) and schedule.input_first
    np.testing.assert_allclose(targets[5], (start + end) / 2, atol=1e-4)
    np.testing.assert_allclose(targets[-1], end)


def test_expression_schedule_with_hold():
    schedule = expression_schedule(NEUTRAL, HAPPY, fps=10, frames=10, hold_frames=3, easing="linear")
    targets = schedule.targets()
    assert len(targets) == 10
    np.testing.assert_array_equal(targets[0], NEUTRAL)
    np.testing.assert_allclose(targets[6:], np.broadcast_to(HAPPY, (4, NUM_AUS)), atol=1e-6)
    assert targets[5, AU12] < HAPPY[AU12]
    bounced = expression_schedule(NEUTRAL, HAPPY, duration=1.0, pingpong=True, hold_frames=2)
    assert bounced.num_frames == 49
    np.testing.assert_array_equal(bounced.targets(), bounced.targets()[::-1])
    with pytest.raises(ScheduleError, match="no room"):
        expression_schedule(NEUTRAL, HAPPY, frames=4, hold_frames=3)
    with pytest.raises(ScheduleError, match="exactly one"):
        expression_schedule(NEUTRAL, HAPPY)


def test_keyframe_order_and_range_are_checked():
    with pytest.raises(ScheduleError, match=r"keyframe 1 \(frame 3\) is not after keyframe 0 \(frame 5\)"):
        Schedule(keyframes=[Keyframe(frame=5, value=HAPPY), Keyframe(frame=3, value=NEUTRAL)])
    with pytest.raises(ScheduleError, match="keyframe 1 is at 3 s .* past the last frame 49"):
        Schedule(keyframes=[Keyframe(at=0, value=HAPPY), Keyframe(at=3.0, value=NEUTRAL)], duration=2.0)
    with pytest.raises(ScheduleError, match="unknown easing 'bounce'"):
        Keyframe(frame=0, value=HAPPY, easing="bounce")


def test_a_keyframe_at_the_end_of_the_duration_lands_on_the_last_frame():
    schedule = Schedule(keyframes=[Keyframe(at=0, value=NEUTRAL), Keyframe(at=2.0, value=HAPPY)], duration=2.0)
    np.testing.assert_allclose(schedule.targets()[-1], HAPPY)
    assert schedule.num_frames == 50 and not np.allclose(schedule.targets()[-2], HAPPY)  # reached on frame 49


# ---------------------------------------------------------------------------------------------------- dict / YAML form

EXAMPLE = {
    "fps": 25,
    "duration": 2.0,
    "pingpong": True,
    "keyframes": [
        {"at": 0.0, "preset": "neutral"},
        {"at": 0.8, "preset": "happy", "intensity": 0.9, "easing": "ease-in-out"},
        {"at": 1.5, "aus": {"AU12": 4.0, "AU25": 2.0}, "easing": "hold"},
        {"frame": 45, "preset": "surprise", "aus": {"AU26": 1.0}},
    ],
}


def test_schedule_from_dict():
    schedule = schedule_from_dict(EXAMPLE)
    # keyframes on frames 0, 20, 38, 45: 0.8 * 25 = 20, 1.5 * 25 = 37.5 -> 38 (half to even)
    assert schedule.path_frames == 50 and schedule.num_frames == 99 and schedule.pingpong
    path = schedule.path()
    np.testing.assert_allclose(path[20], expression_aus("happy", 0.9), atol=1e-6)
    assert not np.allclose(path[19], expression_aus("happy", 0.9), atol=1e-6)
    over_neutral = np.zeros(NUM_AUS)
    over_neutral[[AU12, au_index("AU25")]] = [4.0, 2.0]
    np.testing.assert_array_equal(path[38:45], np.broadcast_to(over_neutral, (7, NUM_AUS)))
    assert not np.allclose(path[37], over_neutral)
    surprise = expression_aus("surprise")
    surprise[au_index("AU26")] = 1.0
    np.testing.assert_allclose(path[45:], np.broadcast_to(surprise, (5, NUM_AUS)))


def test_aus_without_preset_apply_over_the_base():
    base = expression_aus("sad")
    schedule = schedule_from_dict({"keyframes": [{"frame": 0, "aus": {12: 2.0}}]}, base_aus=base)
    expected = base.copy()
    expected[AU12] = 2.0  # the YAML key 12 means AU12
    np.testing.assert_array_equal(schedule.targets()[0], expected)


def test_none_values_count_as_absent():
    spec = {"fps": 25, "frames": None, "duration": 1.0, "keyframes": [
        {"at": None, "frame": 0, "preset": "happy", "aus": {}, "landmarks": None, "easing": "linear"}]}
    assert schedule_from_dict(spec).num_frames == 25


@pytest.mark.parametrize(
    "keyframe, message",
    [
        ({"frame": 0, "preset": "hapy"}, r"keyframe 1, field 'preset': unknown expression; .*did you mean 'happy'"),
        ({"frame": 0, "preset": "happy", "easing": "bounce"}, r"keyframe 1, field 'easing'"),
        ({"frame": 0, "aus": {"AU13": 1.0}}, r"keyframe 1, field 'aus': unknown action unit; known: AU1, "),
        ({"frame": 0, "aus": {"AU12": 9.0}}, r"keyframe 1, field 'aus'"),
        ({"frame": 0, "preset": "happy", "intensity": "lots"}, r"keyframe 1, field 'intensity'"),
        ({"frame": 0, "aus": {"AU12": 1.0}, "intensity": 0.5}, r"keyframe 1: 'intensity' scales a preset, but"),
        ({"frame": -1, "preset": "happy"}, r"keyframe 1, field 'frame'"),
        ({"at": 0.5, "frame": 3, "preset": "happy"}, r"keyframe 1: give exactly one of 'at'"),
        ({"frame": 3}, r"keyframe 1: give 'preset', 'aus' or 'landmarks'"),
        ({"frame": 3, "preset": "happy", "smile": 1}, r"keyframe 1, field 'smile': unknown key; known keys: at"),
        ({"frame": 3, "preset": "happy", "landmarks": [[0, 0]] * 68}, r"keyframe 1: a keyframe holds either"),
        ({"frame": 3, "landmarks": [[0, 0]] * 68}, r"keyframe 1: value of shape \(68, 2\)"),
        ({"frame": 3, "landmarks": "missing.txt"}, r"keyframe 1, field 'landmarks': .*missing.txt"),
    ],
)
def test_dict_errors_name_the_keyframe_and_field(keyframe, message):
    spec = {"keyframes": [{"frame": 0, "preset": "neutral"}, keyframe]}
    with pytest.raises(ScheduleError, match=message):
        schedule_from_dict(spec)


def test_dict_errors_in_the_schedule_fields():
    with pytest.raises(ScheduleError, match="schedule, field 'speed': unknown key; known keys: duration, fps"):
        schedule_from_dict({"speed": 2, "keyframes": [{"frame": 0, "preset": "happy"}]})
    with pytest.raises(ScheduleError, match="field 'keyframes'"):
        schedule_from_dict({"fps": 25})
    with pytest.raises(ScheduleError, match="schedule, field 'fps': Input should be greater than 0"):
        schedule_from_dict({"fps": 0, "keyframes": [{"frame": 0, "preset": "happy"}]})


def test_read_keyframes_with_landmark_files(tmp_path):
    rng = np.random.default_rng(2)
    start, end = rng.uniform(20, 100, size=(2, 66, 2)).astype(np.float32)
    (tmp_path / "points").mkdir()
    write_landmarks(tmp_path / "points" / "start.txt", start)
    np.save(tmp_path / "points" / "end.npy", end)
    spec = {"fps": 10, "frames": 11, "keyframes": [
        {"frame": 0, "landmarks": "points/start.txt", "easing": "cubic"},
        {"at": 1.0, "landmarks": "points/end.npy"},
    ]}
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump(spec))
    targets = read_keyframes(tmp_path / "keys.yaml").targets()
    assert targets.shape == (11, 66, 2)
    np.testing.assert_allclose(targets[0], start, atol=1e-4)
    np.testing.assert_allclose(targets[-1], end)
    np.testing.assert_allclose(targets[5], (start + end) / 2, atol=1e-3)


def test_read_keyframes_from_a_bare_list(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("- {frame: 0, preset: neutral}\n- {frame: 4, preset: blink}\n")
    schedule = read_keyframes(path)
    assert schedule.num_frames == 5
    np.testing.assert_array_equal(schedule.targets()[-1], expression_aus("blink"))
    path.write_text("- {frame: 0, preset: neutral}\n- {frame: 4, preset: wink}\n")
    with pytest.raises(ScheduleError, match=r"keys.yaml: keyframe 1, field 'preset'"):
        read_keyframes(path)
