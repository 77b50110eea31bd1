"""Illusion scores and best-of-N (ddpm.illusions), the from-afar split (ddpm.views), CPU only.

The classifier here is built by hand: a linear module on fixed templates T_k whose logits are
``scale * (2 <x, T_k> - |T_k|^2)``, i.e. ``-scale |x - T_k|^2`` up to a constant shared by all classes.
An image equal to a template is that class with certainty, so the scores have exact oracles.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import ddpm
from ddpm import illusions
from ddpm.illusions import Reading, check_candidates, from_afar, pick_best, score
from ddpm.views import View, area_down, area_highpass, area_lowpass, get_view

SIZE = 8


def template_classifier(templates: torch.Tensor, scale: float = 4.0) -> nn.Module:
    """(K, C, H, W) templates -> a Linear classifier of (B, C, H, W) images: nearest template wins."""
    k = templates.shape[0]
    flat = templates.reshape(k, -1)
    linear = nn.Linear(flat.shape[1], k)
    with torch.no_grad():
        linear.weight.copy_(2 * scale * flat)
        linear.bias.copy_(-scale * (flat ** 2).sum(1))
    return nn.Sequential(nn.Flatten(), linear).eval()


def rand_images(n: int, seed: int = 0, scale: float = 0.9) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, SIZE, SIZE, generator=g) * 2 - 1) * scale


def readings(*pairs) -> list[Reading]:
    return [Reading(str(v), get_view(v), label) for v, label in pairs]


# -- 1. anagram scores ------------------------------------------------------------------------------
@pytest.fixture
def anagram_world():
    """Class 0 = a random image A, class 1 = A upside down (so A is exactly 0, and 1 under flip_v),
    class 2 = an unrelated random image."""
    a, other = rand_images(2)
    templates = torch.stack([a, a.flip(-2), other])
    return template_classifier(templates), templates


def test_an_image_that_is_exactly_both_classes_under_the_views_scores_high(anagram_world):
    classifier, templates = anagram_world
    s = score(classifier, templates[:1], readings(("identity", 0), ("flip_v", 1)))
    assert s["accepted"].tolist() == [True]
    assert s["probs"].min() > 0.999 and s["alignment"].item() > 0.999
    assert s["concealment"].item() > 0.999  # each view reads as its own class, not as the other's
    assert torch.equal(s["score"], s["alignment"])


def test_a_plain_class_a_image_scores_low_on_the_other_view(anagram_world):
    classifier, templates = anagram_world
    s = score(classifier, templates[:1], readings(("identity", 0), ("flip_v", 2)))
    assert s["accepted"].tolist() == [False]
    assert s["read"].tolist() == [[True, False]]  # read right as is, wrong flipped
    assert s["probs"][0, 0] > 0.999 and s["probs"][0, 1] < 1e-3
    assert s["alignment"].item() < 1e-3
    # (concealment only compares the pair's own classes, so it need not be low here: alignment is the test)


def test_concealment_is_the_mean_of_the_row_and_column_softmax_diagonals():
    """Hand-computed: logits [[2, 0], [1, 1]] (view i scored for class j), temperature 1."""
    class Fixed(nn.Module):
        def forward(self, x):  # the identity view holds +1, the negated -1 at pixel 0
            return torch.where(x[:, :1, 0, 0] > 0, torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]]))

    x = torch.ones(1, 1, SIZE, SIZE)
    s = score(Fixed(), x, readings(("identity", 0), ("negate", 1)))
    e = torch.tensor(2.0).exp()
    rows = (e / (e + 1) + 0.5) / 2
    cols = torch.tensor(1.0).sigmoid()  # column 0: [2, 1], column 1: [0, 1]: each diagonal wins by 1
    assert s["concealment"].item() == pytest.approx((rows + cols).item() / 2, abs=1e-6)
    assert s["probs"][0].tolist() == pytest.approx([(e / (e + 1)).item(), 0.5], abs=1e-6)
    assert s["accepted"].tolist() == [False]  # a tie is no reading


def test_score_rejects_bad_input(anagram_world):
    classifier, templates = anagram_world
    with pytest.raises(ValueError, match="at least two readings"):
        score(classifier, templates, readings(("identity", 0)))
    with pytest.raises(ValueError, match="do not fit a classifier of 3 classes"):
        score(classifier, templates, readings(("identity", 0), ("flip_v", 5)))
    with pytest.raises(ValueError, match="temperature"):
        score(classifier, templates, readings(("identity", 0), ("flip_v", 1)), temperature=0)


# -- 2. from afar, and the hybrid's split ------------------------------------------------------------
def test_from_afar_keeps_shape_and_block_means_and_sees_nothing_of_the_highpass():
    x, y = rand_images(3, seed=1), rand_images(3, seed=2)
    far = from_afar(x, 4)
    assert far.shape == x.shape
    torch.testing.assert_close(far.mean((-2, -1)), x.mean((-2, -1)), rtol=0, atol=1e-6)
    torch.testing.assert_close(area_down(far, 4), area_down(x, 4), rtol=0, atol=1e-6)
    torch.testing.assert_close(from_afar(x + area_highpass(y, 4), 4), far, rtol=0, atol=1e-6)
    assert not torch.allclose(from_afar(x + y, 4), far, atol=1e-3)


def test_area_split_is_an_orthogonal_projection_that_sums_back():
    x, y = rand_images(2, seed=3), rand_images(2, seed=4)
    low = area_lowpass(x, 2)
    torch.testing.assert_close(area_lowpass(low, 2), low, rtol=0, atol=1e-6)  # idempotent
    torch.testing.assert_close(low + area_highpass(x, 2), x, rtol=0, atol=1e-6)
    assert abs((low * area_highpass(y, 2)).sum().item()) < 1e-5  # orthogonal parts
    torch.testing.assert_close(from_afar(x, 2), low, rtol=0, atol=1e-6)


@pytest.mark.parametrize("factor", [3, 1, 2.0])
def test_a_factor_that_does_not_divide_the_image_is_refused(factor):
    with pytest.raises(ValueError, match="from-afar factor"):
        from_afar(rand_images(1), factor)


def test_a_hybrid_that_is_one_class_from_afar_and_another_up_close_scores_high(tiny_model):
    """Class 0: a block-constant image L (what from afar sees); class 1: L plus a zero-block-mean
    detail H, invisible from afar. The image L + H is 0 from afar and 1 up close; L alone is not 1."""
    low = area_lowpass(rand_images(1, seed=5), 4)[0]
    high = low + area_highpass(rand_images(1, seed=6), 4)[0]
    classifier = template_classifier(torch.stack([low, high, rand_images(1, seed=7)[0]]))
    hybrid = illusions.hybrid_readings(tiny_model(), "zero", "one", factor=4)  # class names of tiny_model
    s = score(classifier, torch.stack([high, low]), hybrid)
    assert s["accepted"].tolist() == [True, False]
    assert s["alignment"][0] > 0.99 and s["alignment"][1] < 0.01


# -- 3. best of N ----------------------------------------------------------------------------------
def test_pick_best_keeps_the_best_of_each_group_accepted_first():
    images = torch.arange(6.0).view(6, 1, 1, 1)
    scores = {"score": torch.tensor([0.2, 0.9, 0.5, 0.1, 0.3, 0.2]),
              "accepted": torch.tensor([True, False, False, False, False, False])}
    best, kept, chosen = pick_best(images, scores, 3)
    assert chosen.tolist() == [0, 4]  # 0 is accepted, so it beats the higher-scoring 1
    assert best.flatten().tolist() == [0.0, 4.0]
    assert kept["score"].tolist() == pytest.approx([0.2, 0.3])
    with pytest.raises(ValueError, match="groups of 4"):
        pick_best(images, scores, 4)


@pytest.mark.parametrize("n,best_of", [(0, 1), (1, 0), (illusions.MAX_CANDIDATES, 2), (1, illusions.MAX_BEST_OF + 1)])
def test_too_many_or_too_few_candidates_are_refused(n, best_of):
    with pytest.raises(ValueError, match="candidates|positive"):
        check_candidates(n, best_of)


def test_anagram_readings_follow_the_parts(tiny_model):
    model = tiny_model()
    r = illusions.anagram_readings(model, [("one", "identity"), ("two", "rot180")])
    assert [(x.name, x.label) for x in r] == [("identity", 1), ("rot180", 2)]
    x = rand_images(1)
    torch.testing.assert_close(r[1].view(x), x.rot90(2, dims=(-2, -1)))
    assert isinstance(r[0].view, View)


def test_expected_best_of_equals_the_average_over_every_subset():
    import itertools

    key = torch.tensor([0.3, 0.9, 0.1, 0.5, 0.7, 0.2])
    accepted = torch.tensor([True, False, True, True, False, True])
    for k in (1, 2, 3, 6):
        subsets = list(itertools.combinations(range(6), k))
        brute = sum(accepted[max(s, key=lambda i: key[i])].item() for s in subsets) / len(subsets)
        assert illusions.expected_best_of(key, accepted, k) == pytest.approx(brute, abs=1e-12)
    with pytest.raises(ValueError, match="at least that many"):
        illusions.expected_best_of(key, accepted, 7)


# -- 4. pairs, evaluation, the command line --------------------------------------------------------------
def test_parse_pairs_reads_views_and_hybrids_and_refuses_bad_ones():
    pairs = illusions.parse_pairs("6/9:rot180, 0/1:hybrid")
    assert [(p.first, p.second, p.view, p.kind) for p in pairs] == [("6", "9", "rot180", "anagram"),
                                                                     ("0", "1", "hybrid", "hybrid")]
    for bad, match in (("6/9", "bad pair"), ("6:rot180", "bad pair"), ("6/9:spin", "unknown view"), ("", "no pairs")):
        with pytest.raises(ValueError, match=match):
            illusions.parse_pairs(bad)


def test_parse_pairs_splits_class_names_with_a_slash_at_the_cut_that_leaves_two_classes():
    fashion = ["T-shirt/top", "Trouser", "Dress"]
    pairs = illusions.parse_pairs("T-shirt/top/Dress:flip_v,trouser/T-shirt/top:hybrid", fashion)
    assert [(p.first, p.second) for p in pairs] == [("T-shirt/top", "Dress"), ("trouser", "T-shirt/top")]
    with pytest.raises(ValueError, match="bad pair"):  # two slashes and no class names to say which cut
        illusions.parse_pairs("T-shirt/top/Dress:flip_v")


def test_every_preset_names_classes_and_views_of_its_dataset():
    from ddpm.data import DATASETS

    bundled = {m.dataset: m for m in map(ddpm.load, ddpm.bundled())}  # keyed by dataset: checkpoints/emoji is emoji2
    for dataset, pairs in illusions.PRESETS.items():  # a bundled model's, or a dataset's not bundled
        info = DATASETS[dataset]
        if dataset in bundled:
            assert bundled[dataset].classes == list(info.class_names), dataset
        assert pairs and pairs[0].kind == "anagram"  # the app's default anagram comes first
        for pair in pairs:
            assert {pair.first, pair.second} <= set(info.class_names), (dataset, str(pair))
            assert illusions.parse_pairs(str(pair), list(info.class_names)) == [pair]  # the command line reads it back
            if pair.kind == "anagram":
                get_view(pair.view).check(info.image_size, info.image_size)


def test_evaluate_pairs_gives_one_row_per_pair_in_the_unit_range(tiny_model):
    model = tiny_model()
    classifier = template_classifier(rand_images(3, seed=8))
    rows = illusions.evaluate_pairs(model, illusions.parse_pairs("zero/one:flip_v,zero/two:hybrid"), n=4, best_of=2,
                                    ranker=classifier, grader=classifier,
                                    settings=ddpm.Settings(steps=2, guidance=1.0))
    assert [r["pair"] for r in rows] == ["zero/one:flip_v", "zero/two:hybrid"]
    for r in rows:
        assert 0 <= r["single"] <= 1 and 0 <= r["best"] <= 1 and r["n"] == 4 and len(r["probs"]) == 2
        assert r["single"] == r["ranker_single"]  # one classifier: its own grade
        assert len(r["read"]) == 2 and min(r["read"]) >= r["single"]  # accepted in all => in each
    assert illusions.format_table(rows).count("\n") == 3


def test_anagram_per_view_guidance_guides_each_view_by_its_own_scale(tiny_model):
    model = tiny_model()
    x, t, den = torch.randn(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(11)), 20, model.denoiser
    parts = [("zero", "identity"), ("one", "flip_v")]
    shared = ddpm.anagram(model, parts, n=2, settings=ddpm.Settings(guidance=2.0))
    same = ddpm.anagram(model, parts, n=2, settings=ddpm.Settings(guidance=9.0), guidances=[2.0, 2.0])
    torch.testing.assert_close(same.eps_fn(x, t), shared.eps_fn(x, t), rtol=0, atol=1e-5)
    job = ddpm.anagram(model, parts, n=2, settings=ddpm.Settings(guidance=2.0), guidances=[2.0, 5.0])
    with torch.no_grad():
        null = torch.full((2,), 3)
        c0, u0 = den(x, t, torch.tensor([0, 0])), den(x, t, null)
        c1, u1 = den(x.flip(-2), t, torch.tensor([1, 1])), den(x.flip(-2), t, null)
        by_hand = ((u0 + 2 * (c0 - u0)) + (u1 + 5 * (c1 - u1)).flip(-2)) / 2
    torch.testing.assert_close(job.eps_fn(x, t), by_hand, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="one guidance scale"):
        ddpm.anagram(model, parts, guidances=[2.0])


def test_anagram_repeats_take_every_step_again_after_renoising(tiny_model):
    model = tiny_model()
    parts = [("zero", "identity"), ("one", "flip_v")]
    job = ddpm.anagram(model, parts, settings=ddpm.Settings(sampler="ddpm", steps=5), repeats=2)
    assert job.num_model_steps == 5 + 2 * 4  # the last step (onto the clean image) is not repeated
    assert sorted(set(job.plan)) == sorted(ddpm.anagram(model, parts, settings=ddpm.Settings(sampler="ddpm", steps=5)).plan)
    assert job.run().shape == (1, 1, SIZE, SIZE)
    with pytest.raises(ValueError, match="cannot resample"):
        ddpm.anagram(model, parts, settings=ddpm.Settings(sampler="dpm++", steps=5), repeats=1)
    with pytest.raises(ValueError, match="repeats"):
        ddpm.anagram(model, parts, repeats=-1)


def test_hybrid_recipe_splits_by_the_area_projection_by_default(tiny_model):
    model = tiny_model()
    job = ddpm.hybrid(model, "zero", "one", n=2, settings=ddpm.Settings(guidance=1.0), factor=4)
    x, t, den = torch.randn(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(9)), 20, model.denoiser
    with torch.no_grad():
        by_hand = area_lowpass(den(x, t, torch.tensor([0, 0])), 4) + area_highpass(den(x, t, torch.tensor([1, 1])), 4)
    torch.testing.assert_close(job.eps_fn(x, t), by_hand, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="not both"):
        ddpm.hybrid(model, "zero", "one", sigma=1.0, factor=4)
    with pytest.raises(ValueError, match="from-afar factor"):
        ddpm.hybrid(model, "zero", "one", factor=3)


def test_hybrid_high_guidance_scales_only_the_high_part(tiny_model):
    model = tiny_model()
    x, t, den = torch.randn(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(10)), 20, model.denoiser
    job = ddpm.hybrid(model, "zero", "one", n=2, settings=ddpm.Settings(guidance=2.0), factor=4, high_guidance=5.0)
    with torch.no_grad():
        null = torch.full((2,), 3)
        low_c, low_u = den(x, t, torch.tensor([0, 0])), den(x, t, null)
        high_c = den(x, t, torch.tensor([1, 1]))
        by_hand = area_lowpass(low_u + 2 * (low_c - low_u), 4) + area_highpass(low_u + 5 * (high_c - low_u), 4)
    torch.testing.assert_close(job.eps_fn(x, t), by_hand, rtol=0, atol=1e-5)


def test_the_command_line_refuses_bad_requests_before_any_work(tmp_path, capsys):
    import argparse

    from ddpm.cli import illusion as illusion_cli

    parser = illusion_cli.add_illusion_arguments(argparse.ArgumentParser())
    for argv, message in ((["anagram", "--model", "mnist", "--classes", "1", "--view", "flip_h"], "two classes"),
                          (["hybrid", "--model", "mnist", "--classes", "0,1", "--n", "9", "--best-of", "8"], "candidates"),
                          (["hybrid", "--model", "mnist", "--classes", "0,1", "--out", "x.gif"], ".npz or .png")):
        args = parser.parse_args(argv + ([] if "--out" in argv else ["--out", str(tmp_path / "x.npz")]))
        assert args.run(args) == 2
        assert message in capsys.readouterr().err
    evaluate = illusion_cli.add_evaluate_arguments(argparse.ArgumentParser())
    args = evaluate.parse_args(["--model", "mnist", "--n", "4", "--best-of", "8"])
    assert args.run(args) == 2 and "at least --best-of" in capsys.readouterr().err
