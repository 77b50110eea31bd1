"""ddpm.explore and ddpm.reproduce, CPU only: per-image seeds, branching a run at any step, comparing settings on
one noise, class traces, and the Python / CLI / link texts that reproduce a result.

The tiny models come from conftest; the oracle (tests/test_core.py) knows the exact noise of a one-image-per-class
dataset, so every correct sampler, resumed from any timestep, must land on its class's image.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_core import images, oracle_model

import ddpm
from ddpm import explore
from ddpm.explore import branch, branch_job, compare, generate_each, image_seed, per_class_labels, sample_batches
from ddpm.reproduce import as_cli, as_python, from_query, normalise, to_query

LABELS = ["zero", "one", "two"]


def settings(sampler: str = "dpm++", steps: int = 10, guidance: float = 2.0, seed: int = 3, **more) -> ddpm.Settings:
    return ddpm.Settings(sampler=sampler, steps=steps, guidance=guidance, seed=seed, **more)


def frames(job) -> tuple[torch.Tensor, dict]:
    recorder = ddpm.Recorder()
    return job.run(recorder), recorder.frames()


# -- 1. one seed per image -------------------------------------------------------------------------------------
def test_image_seeds_differ_between_images_and_between_seeds_and_are_not_shifted_copies():
    seeds = {image_seed(s, i) for s in range(20) for i in range(20)}
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)
    assert image_seed(0, 1) != image_seed(1, 0)
    assert image_seed(5, 7) == image_seed(5, 7)


@pytest.mark.parametrize("sampler", ["ddpm", "dpm++sde", "dpm++"])
def test_each_image_is_its_own_one_image_run_whatever_the_batch(tiny_model, sampler):
    model, s = tiny_model(), settings(sampler)
    labels = ["zero", "one", "two", "one", "zero"]
    each = generate_each(model, labels, settings=s)
    start, together = each.x, each.run()
    for i, label in enumerate(labels):  # image i == the one-image run with image i's seed, noise stream included
        job = ddpm.generate(model, [label], settings=s.with_(seed=image_seed(s.seed, i)))
        assert torch.equal(job.x[0], start[i])
        torch.testing.assert_close(job.run()[0], together[i], rtol=0, atol=1e-5)
    for batch in (1, 2, 5):
        torch.testing.assert_close(sample_batches(model, labels, s, batch=batch), together, rtol=0, atol=1e-5)


def test_per_class_labels_interleave_the_classes_like_balanced_labels():
    assert per_class_labels(["a", "b", "c"], 2) == ["a", "b", "c", "a", "b", "c"]
    from ddpm.evaluate import balanced_labels
    assert per_class_labels([0, 1, 2, 3], 3) == balanced_labels(12, 4).tolist()
    with pytest.raises(ValueError, match="positive integer"):
        per_class_labels(["a"], 0)


# -- 2. branch from any step -------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ddpm.SAMPLERS)
@pytest.mark.parametrize("at_step", [0, 4, 9, 10])
def test_a_branch_with_the_same_settings_reproduces_the_original_exactly(tiny_model, sampler, at_step):
    model, s = tiny_model(), settings(sampler)
    original, seen = frames(generate_each(model, LABELS, settings=s))
    # labels_after given (the same ones): the noise estimate IS swapped at at_step, for an equal one
    result, seen_b = frames(branch(model, LABELS, s, at_step, labels_after=list(LABELS), settings_after=s.with_()))
    assert original.dtype == torch.float32 and torch.equal(result, original)
    assert torch.equal(seen_b["x"], seen["x"]) and seen_b["t"].tolist() == seen["t"].tolist()


@pytest.mark.parametrize("sampler", ddpm.SAMPLERS)
def test_branching_at_step_zero_with_another_class_is_generating_that_class_from_the_same_noise(tiny_model, sampler):
    model, s = tiny_model(), settings(sampler)
    other = ["two", "two", "zero"]
    assert torch.equal(branch(model, LABELS, s, 0, labels_after=other).run(), generate_each(model, other, settings=s).run())


@pytest.mark.parametrize("sampler", ddpm.SAMPLERS)
def test_a_changed_class_or_guidance_acts_only_after_the_branch_step(tiny_model, sampler):
    model, s = tiny_model(), settings(sampler)
    original, seen = frames(generate_each(model, LABELS, settings=s))
    for change in (dict(labels_after=["two", "zero", "one"]), dict(settings_after=s.with_(guidance=0.0))):
        result, seen_b = frames(branch(model, LABELS, s, 5, **change))
        assert torch.equal(seen_b["x"][:6], seen["x"][:6])  # x at steps 0..5 is the original's
        assert not torch.allclose(result, original, atol=1e-3)
    last, _ = frames(branch(model, LABELS, s, 9, labels_after=["two", "zero", "one"]))  # one step left
    assert (last - original).abs().max() < 0.5 * (result - original).abs().max()


def test_a_new_seed_changes_only_the_noise_drawn_after_the_branch(tiny_model):
    model = tiny_model()
    for sampler, changes in (("ddpm", True), ("dpm++sde", True), ("dpm++", False), ("ddim", False)):
        s = settings(sampler)
        original, seen = frames(generate_each(model, LABELS, settings=s))
        result, seen_b = frames(branch(model, LABELS, s, 5, settings_after=s.with_(seed=99)))
        assert torch.equal(seen_b["x"][:6], seen["x"][:6])
        assert torch.equal(result, original) != changes, sampler


def test_a_sampler_that_cannot_start_mid_run_is_refused_with_the_ones_that_can():
    model = oracle_model(images(2), ddpm.NoiseSchedule("linear", num_timesteps=50))
    s = settings("ddpm", steps=10, guidance=1.0)
    for after in sorted(set(ddpm.SAMPLERS) - set(explore.RESUMABLE)):
        with pytest.raises(ValueError, match="cannot start at an arbitrary step: branch with ddpm"):
            branch(model, ["c0", "c1"], s, 4, settings_after=s.with_(sampler=after, steps=5))


@pytest.mark.parametrize("after", explore.RESUMABLE)
@pytest.mark.parametrize("steps", [3, 25])
def test_a_new_sampler_resumes_at_the_branch_timestep_and_still_lands_on_the_oracle_target(after, steps):
    schedule = ddpm.NoiseSchedule("linear", num_timesteps=50)
    targets = images(2)
    model = oracle_model(targets, schedule)
    s = settings("ddpm", steps=10, guidance=1.0)
    b = branch(model, ["c0", "c1"], s, 4, settings_after=s.with_(sampler=after, steps=steps))
    t_k = b.original.plan[4]
    own = schedule.sampler(after, steps).timesteps
    assert b.plan == b.original.plan[:4] + [t_k] + [t for t in own if t < t_k] + [-1]
    steps_seen = list(b)
    assert [st.index for st in steps_seen] == list(range(b.num_model_steps))
    assert steps_seen[4].t == t_k and {st.total for st in steps_seen} == {b.num_model_steps}
    torch.testing.assert_close(steps_seen[-1].x_next, targets, rtol=0, atol=2e-3)


def test_an_sdedit_run_branches_through_its_job_builder(tiny_model):
    model, s = tiny_model(), settings("ddim")
    x0 = images(2)

    def build(labels):
        return lambda st: ddpm.sdedit(model, x0, [0.6], labels=labels, settings=st)[0]
    original = build("one")(s).run()
    assert torch.equal(branch_job(build("one"), s, 3, build_after=build("one")).run(), original)
    assert not torch.equal(branch_job(build("one"), s, 3, build_after=build("two")).run(), original)
    at_end = branch_job(build("one"), s, 6, settings_after=s.with_(sampler="dpm++", guidance=5.0))
    assert torch.equal(at_end.run(), original)  # 6 of 6 steps done: nothing is left to change


@pytest.mark.parametrize("k", [-1, 11, 2.5, True])
def test_a_branch_step_outside_the_run_is_a_one_line_error(tiny_model, k):
    with pytest.raises(ValueError, match="from 0 to 10") as err:
        branch(tiny_model(), LABELS, settings(), k)
    assert "\n" not in str(err.value)


def test_a_repaint_run_cannot_branch_to_another_sampler(tiny_model):
    model, s = tiny_model(), settings("ddpm")
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:4] = True
    build = lambda st: ddpm.inpaint(model, images(1), mask, settings=st, jump_length=2, jump_n_sample=2)  # noqa: E731
    with pytest.raises(ValueError, match="RePaint"):
        branch_job(build, s, 2, settings_after=s.with_(sampler="ddim"))
    assert torch.equal(branch_job(build, s, 3, settings_after=s.with_(guidance=0.5)).run()[~mask.expand(1, 1, 8, 8)],
                       images(1)[~mask.expand(1, 1, 8, 8)])  # the known region stays exact


# -- 3. compare on the same noise ------------------------------------------------------------------------------
def test_every_column_starts_from_the_same_noise_and_identical_columns_agree(tiny_model):
    model = tiny_model()
    variants = [settings(name, steps) for name in ddpm.SAMPLERS for steps in (5, 12)] + [settings("ddpm", 12)]
    c = compare(model, ["zero", "two"], variants, record_every=1)
    updates = list(c)
    x_T = [col.recorder.frames()["x"][0] for col in c.columns]
    assert all(torch.equal(x, x_T[0]) for x in x_T)
    assert torch.equal(c.columns[-1].images, c.columns[1].images)  # ddpm 12 steps twice: the same images
    assert all(col.done and col.seconds > 0 and col.steps_done == col.settings.steps for col in c.columns)
    for col in c.columns:
        assert 0 <= col.along[0] and all(a < b for a, b in zip(col.along, col.along[1:])) and col.along[-1] < 1
    for i, col in enumerate(c.columns):  # per column, the updates' "along" climbs to 1 at its last step
        mine = [u for u in updates if u.column == i]
        assert [u.along for u in mine] == col.along[1:] + [1.0] and [u.done for u in mine][-1]


def test_short_columns_finish_while_a_long_one_still_streams(tiny_model):
    c = compare(tiny_model(), ["one"], [settings("ddim", 40), settings("ddim", 4)])
    order = [(u.column, u.done) for u in c]
    assert order.index((1, True)) < 10 and order[-1] == (0, True)


@pytest.mark.parametrize("sampler", ddpm.SAMPLERS)
def test_a_guidance_sweep_runs_in_one_pass_and_equals_each_guidance_alone(tiny_model, sampler):
    model = tiny_model()
    variants = [settings(sampler, 8, guidance=g) for g in (0.0, 1.0, 3.0, 7.0)]
    c = compare(model, LABELS, variants)
    assert len(c.jobs) == 1 and c.columns[0].shared == 4
    columns = c.run()
    for v, col in zip(variants, columns):
        torch.testing.assert_close(col.images, generate_each(model, LABELS, settings=v).run(), rtol=0, atol=1e-4)
    assert not torch.allclose(columns[0].images, columns[3].images, atol=1e-3)


def test_compare_reports_accuracy_with_a_classifier_and_refuses_mixed_seeds(tiny_model):
    model = tiny_model()
    always_one = lambda x: torch.tensor([[0.0, 5.0, 0.0]]).expand(len(x), 3)  # noqa: E731
    col, = compare(model, ["one", "one", "two", "zero"], [settings()], classifier=always_one).run()
    assert col.accuracy == 0.5
    with pytest.raises(ValueError, match="same seed"):
        compare(model, LABELS, [settings(seed=1), settings(seed=2)])


def test_compare_counts_its_work_before_running_and_shares_noise_unconditionally(tiny_model):
    model = tiny_model()
    sweep = compare(model, LABELS, [settings("ddim", 6, guidance=g) for g in (0.0, 3.0)] + [settings("ddpm", 4)])
    assert sweep.cost == 2 * 3 * 6 + 3 * 4 and not sweep.started  # counted from the plans, nothing ran
    free = ddpm.testing.tiny_model("unet2d")  # unconditional: n images, no labels, no accuracy
    c = compare(free, None, [settings("ddim", 3), settings("dpm++", 7)], n=2, classifier=lambda x: x.flatten(1))
    columns = c.run()
    assert c.cost == 2 * 3 + 2 * 7 and all(col.accuracy is None and col.images.shape[0] == 2 for col in columns)
    first, second = (job.x for job in c.jobs.values())
    assert torch.equal(first, second)


# -- 4. watch the class form -------------------------------------------------------------------------------------
def brightness_classifier(x: torch.Tensor) -> torch.Tensor:
    """Three classes by mean brightness of the top half: dark, grey, light (logits, softmax-sharp)."""
    m = x[:, :, : x.shape[-2] // 2].mean((1, 2, 3))
    return -20 * torch.stack([(m + 0.8).abs(), m.abs(), (m - 0.8).abs()], 1)


def test_class_trace_follows_the_frames_and_names_the_target_and_runner_up():
    S, B = 5, 2
    level = torch.linspace(-0.8, 0.8, S)  # image 0 goes dark -> light; image 1 stays dark
    frames_x0 = torch.stack([torch.stack([torch.full((1, 4, 4), float(v)), torch.full((1, 4, 4), -0.8)]) for v in level])
    probs = explore.class_trace(brightness_classifier, frames_x0)
    assert probs.shape == (S, B, 3) and torch.allclose(probs.sum(-1), torch.ones(S, B))
    trace = explore.target_trace(probs, [2, 0])
    assert trace.p_target[0, 0] < 0.01 and trace.p_target[-1, 0] > 0.99 and (trace.p_target[:, 1] > 0.99).all()
    assert trace.runner_up[0, 0] == 0 and trace.runner_up[-1, 0] == 1  # dark first, then the grey neighbour
    assert explore.target_trace(probs).target.tolist() == [2, 0]  # unasked: the class of the last frame


def test_view_traces_classify_each_view_of_an_illusion():
    top_light = -torch.ones(1, 1, 1, 4, 4)
    top_light[..., :2, :] = 0.8  # light on top, dark below: flipped, it reads dark
    same, flipped = explore.view_traces(brightness_classifier, top_light, [(2, "identity"), (0, "flip_v")])
    assert same.p_target.item() > 0.99 and flipped.p_target.item() > 0.99
    with pytest.raises(ValueError, match="one target class"):
        explore.target_trace(torch.ones(1, 2, 3) / 3, [0, 3])


# -- 5. reproduce anything ---------------------------------------------------------------------------------------
@pytest.fixture
def saved(edit_files):
    """(model folder, loaded model, a 16x16 picture file, a mask file of the same size)."""
    folder, picture, mask = edit_files
    return str(folder), ddpm.load(folder), str(picture), str(mask)


def recipes(picture: str, mask: str) -> list[tuple[str, dict, ddpm.Settings]]:
    return [("generate", {"labels": ["zero", "2", "one"]}, settings("dpm++sde", 6)),
            ("sdedit", {"image": picture, "strengths": [0.3, 0.7], "labels": "two"}, settings("ddim", 6, eta=0.5)),
            ("inpaint", {"image": picture, "mask": mask, "labels": "one", "n": 2, "jump_length": 2, "jump_n_sample": 2},
             settings("ddpm", 6, seed=11)),
            ("anagram", {"parts": [("zero", "identity"), ("two", "flip_v")], "n": 2}, settings("dpm++", 5)),
            ("hybrid", {"low_label": "one", "high_label": None, "sigma": 1.5, "n": 1},
             settings("dpm++", 5, dtype="bfloat16"))]


def direct(model, recipe: str, args: dict, s: ddpm.Settings) -> torch.Tensor:
    """The original call, written out."""
    from ddpm.cli.edit import load_mask
    from ddpm.images import prepare_image
    if recipe == "generate":
        return sample_batches(model, args["labels"], s)
    if recipe == "sdedit":
        return torch.cat([j.run() for j in ddpm.sdedit(model, prepare_image(args["image"], model), args["strengths"],
                                                        labels=args["labels"], settings=s)])
    if recipe == "inpaint":
        x0 = prepare_image(args["image"], model, keep_layout=True).expand(args["n"], -1, -1, -1)
        return ddpm.inpaint(model, x0, load_mask(args["mask"], model), labels=args["labels"], settings=s,
                            jump_length=args["jump_length"], jump_n_sample=args["jump_n_sample"]).run()
    if recipe == "anagram":
        return ddpm.anagram(model, args["parts"], n=args["n"], settings=s).run()
    return ddpm.hybrid(model, args["low_label"], args["high_label"], sigma=args["sigma"], n=args["n"], settings=s).run()


def test_the_python_text_gives_the_same_images_as_the_original_call(saved, tmp_path, monkeypatch):
    folder, model, picture, mask = saved
    monkeypatch.chdir(tmp_path)  # the text saves result.png
    for recipe, args, s in recipes(picture, mask):
        text = as_python(recipe, folder, args, s)
        namespace = {}
        exec(compile(text, f"<{recipe}>", "exec"), namespace)
        assert torch.equal(namespace["images"].cpu(), direct(model, recipe, args, s).cpu()), recipe
        assert f"seed={s.seed}" in text and f"dtype={s.dtype!r}" in text


def test_the_cli_text_parses_with_the_real_parser_and_gives_the_same_images(saved, tmp_path):
    import shlex

    from ddpm import cli
    from ddpm.cli.sample import for_model, settings_from
    folder, model, picture, mask = saved
    parser = cli.build_parser()
    for recipe, args, s in recipes(picture, mask)[:3]:
        words = shlex.split(as_cli(recipe, folder, args, s, out=str(tmp_path / f"{recipe}.npz")))
        assert words[:3] == ["python", "-m", "ddpm"]
        parsed = parser.parse_args(words[3:])
        assert for_model(settings_from(parsed), parsed, model) == ddpm.recipes.resolve(model, s)  # as it runs
        expected = ddpm.images.to_numpy(direct(model, recipe, args, s))
        if recipe == "generate":  # cli.py's sample wires to sample_batches later: the same call on the parsed flags
            got = ddpm.images.to_numpy(sample_batches(model, parsed.labels.split(","), s, batch=parsed.batch))
        else:
            assert parsed.run(parsed) == 0
            got = np.load(tmp_path / f"{recipe}.npz")["images"]
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="no command-line verb"):
        as_cli("forward", folder, {"image": picture, "t": 3}, settings())


def test_a_link_query_round_trips_every_recipe(saved):
    folder, _, picture, mask = saved
    for recipe, args, s in recipes(picture, mask) + [("generate", {"n": 4}, settings(compile=True, seed=2**62))]:
        query = to_query(recipe, folder, args, s)
        assert from_query(query) == (recipe, folder, normalise(recipe, args), s)
        assert from_query("?" + query)[0] == recipe


@pytest.mark.parametrize("query, message", [("model=m", "no recipe"), ("recipe=paint&model=m", "unknown recipe"),
                                            ("recipe=generate&model=m&steps=many", "steps is not a whole number"),
                                            ("recipe=generate&model=m&sampler=euler", "unknown sampler"),
                                            ("recipe=sdedit&model=m&image=a.png", "needs strengths")])
def test_a_bad_link_is_a_one_line_error(query, message):
    with pytest.raises(ValueError, match=message) as err:
        from_query(query)
    assert "\n" not in str(err.value)
