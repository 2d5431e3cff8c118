"""The six rewards, their judges and the tag protocol, on hand-written trajectories (the paper's rules)."""

from __future__ import annotations

import math
import pickle
import socket

import pytest

from rezero.core.config import RewardParams
from rezero.core.errors import PipelineError
from rezero.episode import protocol
from rezero.episode.judges import AnswerLengthLimit, LLMJudge, make_judge
from rezero.episode.rewards import (
    REWARD_NAMES,
    REWARDS,
    build_reward_funcs,
    em_chunk_reward,
    format_reward,
    make_correctness_reward,
    make_retry_reward,
    reward_funcs_for,
    search_diversity_reward,
    search_strategy_reward,
)

SEARCH = "<think>I should look this up.</think><search>oxygen tank</search>"
ANSWER = "<think>I know it now.</think><answer>Fra Mauro</answer>"
PAPER_WEIGHTS = {
    "correctness": 4,
    "format": 2,
    "retry": 1,
    "em_chunk": 1,
    "search_strategy": 1,
    "search_diversity": 1,
}


def one(reward, **fields) -> float:
    """Score a single rollout described by `fields` (each given for that one row)."""
    scores = reward([None], **{name: [value] for name, value in fields.items()})
    assert len(scores) == 1 and isinstance(scores[0], float)
    return scores[0]


class TestProtocol:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("<answer>a</answer> <answer> b </answer>", "b"),
            ("<answer></answer>", ""),
            ("<answer>unclosed", None),
            ("</answer>a<answer>", None),
            (None, None),
            (42, None),
        ],
    )
    def test_extract_answer_takes_the_last_complete_pair(self, text, expected):
        assert protocol.extract_answer(text) == expected

    def test_extract_searches_in_order_and_last_search_is_what_runs(self):
        text = "<think>x</think><search> a </search>junk<search>b\nc</search><search>open"
        assert protocol.extract_searches(text) == ["a", "b\nc"]
        assert protocol.last_search(text) == "b\nc"
        assert protocol.count_searches(text) == 2
        assert protocol.last_search("no tags") is None

    @pytest.mark.parametrize("text", ["<information>x</information>", "<INFO>", "</Information>", "<infos>"])
    def test_information_tags_in_any_form_are_detected(self, text):
        assert protocol.has_information_tag(text)

    def test_episode_ends_on_a_turn_without_a_search(self):
        assert protocol.ends_episode(ANSWER) and protocol.ends_episode(None)
        assert not protocol.ends_episode(SEARCH)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TestLLMJudge:
    @pytest.mark.parametrize(
        ("reply", "expected"),
        [
            ("Yes", True),
            ("yes.", True),
            (" YES, it matches", True),
            ("No", False),
            ("No, not yes", False),
            ("", False),
        ],
    )
    def test_reply_is_read_as_yes_or_no(self, chat_server, reply, expected):
        chat_server.respond = lambda body: (200, reply)
        judge = LLMJudge(base_url=chat_server.base_url, model="judge-model", max_retries=0)
        assert judge("Where did it land?", "Fra Mauro", "Fra Mauro highlands") is expected

    def test_prompt_carries_question_answers_and_model(self, chat_server):
        LLMJudge(base_url=chat_server.base_url, model="judge-model", max_retries=0)(
            "Where?", "Hadley", "Fra Mauro"
        )
        path, body = chat_server.requests[-1]
        prompt = body["messages"][0]["content"]
        assert path == "/v1/chat/completions" and body["model"] == "judge-model"
        assert "Where?" in prompt and "Hadley" in prompt and "Fra Mauro" in prompt and "Yes" in prompt

    def test_settings_come_from_the_environment(self, chat_server, monkeypatch):
        monkeypatch.setenv("REZERO_JUDGE_BASE_URL", chat_server.base_url)
        monkeypatch.setenv("REZERO_JUDGE_MODEL", "env-model")
        monkeypatch.setenv("REZERO_JUDGE_API_KEY", "secret")
        judge = LLMJudge(max_retries=0)
        assert judge("q", "a", "a") is True
        assert chat_server.requests[-1][1]["model"] == "env-model"

    def test_missing_settings_are_a_pipeline_error(self, monkeypatch):
        monkeypatch.delenv("REZERO_JUDGE_BASE_URL", raising=False)
        monkeypatch.delenv("REZERO_JUDGE_MODEL", raising=False)
        with pytest.raises(PipelineError, match="REZERO_JUDGE_BASE_URL"):
            LLMJudge()

    def test_unreachable_endpoint_is_a_pipeline_error_naming_the_url(self):
        url = f"http://127.0.0.1:{closed_port()}/v1"
        judge = LLMJudge(base_url=url, model="m", max_retries=0, timeout_s=2)
        with pytest.raises(PipelineError, match=f"{url}.*unreachable"):
            judge("q", "a", "a")

    def test_http_error_is_a_pipeline_error(self, chat_server):
        chat_server.respond = lambda body: (500, "nope")
        with pytest.raises(PipelineError, match="HTTP 500"):
            LLMJudge(base_url=chat_server.base_url, model="m", max_retries=0)("q", "a", "a")

    def test_make_judge_reaches_the_endpoint_once_before_anything_else(self, chat_server, monkeypatch):
        monkeypatch.setenv("REZERO_JUDGE_BASE_URL", chat_server.base_url)
        monkeypatch.setenv("REZERO_JUDGE_MODEL", "m")
        judge = make_judge(RewardParams(judge="llm", max_answer_words=3, max_answer_gold_ratio=1.5))
        assert isinstance(judge, LLMJudge) and judge.length_limit == AnswerLengthLimit(3, 1.5)
        assert chat_server.requests == [("/v1/models", None)]  # checked, nothing judged yet

    @pytest.mark.parametrize("refusal", ["dead", 401])
    def test_make_judge_refuses_a_dead_or_refusing_endpoint_naming_it_without_credentials(
        self, chat_server, monkeypatch, refusal
    ):
        url = f"http://127.0.0.1:{closed_port()}/v1" if refusal == "dead" else chat_server.base_url
        chat_server.models_status = 200 if refusal == "dead" else refusal
        secret_url = url.replace("http://", "http://judge:s3cret@")
        monkeypatch.setenv("REZERO_JUDGE_BASE_URL", secret_url)
        monkeypatch.setenv("REZERO_JUDGE_MODEL", "m")
        with pytest.raises(PipelineError) as caught:
            make_judge(RewardParams(judge="llm"))
        assert "LLM judge at http://***@127.0.0.1:" in str(caught.value) and "s3cret" not in str(caught.value)
        assert ("unreachable" if refusal == "dead" else "HTTP 401") in str(caught.value)

    def test_too_long_answer_is_no_without_asking(self, chat_server):
        judge = LLMJudge(base_url=chat_server.base_url, model="m", max_retries=0, max_answer_words=3)
        assert judge("Where?", "near the Fra Mauro highlands, I think", "Fra Mauro") is False
        assert chat_server.requests == []
        assert judge("Where?", "Fra Mauro highlands", "Fra Mauro") is True  # 3 words: asked, "Yes"
        assert len(chat_server.requests) == 1

    def test_correctness_with_llm_judge_and_pickle_after_use(self, chat_server):
        reward = make_correctness_reward(LLMJudge(base_url=chat_server.base_url, model="m", max_retries=0))
        assert one(reward, turns=[SEARCH, ANSWER], answer="Fra Mauro", question="q") == 1.0
        chat_server.respond = lambda body: (200, "No")
        clone = pickle.loads(pickle.dumps(reward))
        assert one(clone, turns=[SEARCH, ANSWER], answer="Fra Mauro", question="q") == 0.0


class _RecordingJudge:
    def __init__(self):
        self.calls = []

    def __call__(self, question, prediction, gold):
        self.calls.append((question, prediction, gold))
        return True


class TestCorrectness:
    @pytest.mark.parametrize(
        ("turns", "gold", "expected"),
        [
            ([SEARCH, "<think>t</think><answer>The Fra-Mauro.</answer>"], "fra mauro", 1.0),
            (["<think>t</think><answer>near the Fra Mauro highlands</answer>"], "Fra Mauro", 1.0),
            ([SEARCH, "<think>t</think><answer>Hadley Rille</answer>"], "Fra Mauro", 0.0),
            (["<think>t</think><answer>Fra Mauro</answer><search>q</search>"], "Fra Mauro", 0.0),
            (["<think>t</think><answer>Fra Mauro</answer><information>x</information>"], "Fra Mauro", 0.0),
            ([ANSWER, SEARCH], "Fra Mauro", 0.0),  # the answer must be in the last turn
            ([SEARCH], "Fra Mauro", 0.0),
            (["<think>t</think><answer>Fra Mauro"], "Fra Mauro", 0.0),  # unclosed answer
            (["<answer>Fra Mauro</answer>"], "Fra Mauro", 1.0),  # no think: format's business, not this one
            ([ANSWER], None, 0.0),
            ([ANSWER], "", 0.0),
            ([], "Fra Mauro", 0.0),
            (None, "Fra Mauro", 0.0),
        ],
    )
    def test_table(self, turns, gold, expected):
        assert one(make_correctness_reward(), turns=turns, answer=gold, question="q") == expected

    def test_judge_sees_question_extracted_answer_and_gold(self):
        judge = _RecordingJudge()
        one(make_correctness_reward(judge), turns=[SEARCH, ANSWER], answer=" Fra Mauro ", question="Where?")
        assert judge.calls == [("Where?", "Fra Mauro", "Fra Mauro")]

    @pytest.mark.parametrize(
        "turns", [[SEARCH], ["<think>t</think><answer>x</answer><search>q</search>"], ["<answer> </answer>"]]
    )
    def test_judge_is_not_asked_when_the_last_turn_is_not_a_final_answer(self, turns):
        judge = _RecordingJudge()
        assert one(make_correctness_reward(judge), turns=turns, answer="x", question="q") == 0.0
        assert judge.calls == []

    def test_missing_question_reads_as_empty(self):
        judge = _RecordingJudge()
        assert make_correctness_reward(judge)([None], turns=[[ANSWER]], answer=["Fra Mauro"]) == [1.0]
        assert judge.calls[0][0] == ""

    def test_judge_must_be_callable(self):
        with pytest.raises(ValueError, match="judge"):
            make_correctness_reward("yes")


class TestFormat:
    @pytest.mark.parametrize(
        ("last_turn", "expected"),
        [
            ("<think>t</think><answer>a</answer>", 1.0),
            ("<think>t</think>\n<search>q</search>", 0.0),  # well formed, but the episode never answered
            ("<think>t</think><search>q1</search><search>q2</search>", 0.0),
            ("<think>a</think><think>b</think><answer>a</answer>  \n", 1.0),  # trailing whitespace ok
            ("<think></think><answer>a</answer>", 1.0),  # an empty think pair still counts
            ("<answer>a</answer>", 0.0),  # no think
            ("<think>t<answer>a</answer>", 0.0),  # unclosed think
            ("<answer>a</answer><think>t</think>", 0.0),  # think after the action
            ("<think>a</think><search>q</search><think>b</think><search>r</search>", 0.0),
            ("<think>t</think><answer>a</answer><search>q</search>", 0.0),  # both
            ("<think>t</think><search>q</search><answer>a</answer>", 0.0),
            ("<think>t</think><answer>a</answer><answer>b</answer>", 0.0),  # two answers
            ("<think>t</think>", 0.0),  # neither
            ("<think>t</think><answer>a</answer> thanks!", 0.0),  # does not end on the action
            ("<think>t</think><answer>a</answer></search>", 0.0),  # ends on the wrong closing tag
            ("<think>t</think><answer>a", 0.0),  # unclosed answer
            ("**<think>**t**</think>**<answer>a</answer>", 0.0),  # markdown-decorated tags
            ("<think>t</think>*<answer>*a*</answer>*", 0.0),
            ("<think>t</think>_<search>_q_</search>_", 0.0),
            ("<think>t</think><information>made up</information><answer>a</answer>", 0.0),
            ("<think>t</think><INFO>made up<answer>a</answer>", 0.0),
            ("<think>**bold** idea</think><answer>a</answer>", 1.0),  # markdown inside text is fine
            ("", 0.0),
        ],
    )
    def test_last_turn_table(self, last_turn, expected):
        assert one(format_reward, turns=[SEARCH, last_turn]) == expected

    def test_only_the_last_turn_is_judged(self):
        assert one(format_reward, turns=["garbage", ANSWER]) == 1.0
        assert one(format_reward, turns=[ANSWER, "garbage"]) == 0.0

    def test_episode_ending_on_a_good_answer_scores_one(self):
        assert one(format_reward, turns=[SEARCH, SEARCH, ANSWER]) == 1.0
        assert one(format_reward, turns=[ANSWER]) == 1.0

    @pytest.mark.parametrize("searches", [1, 3, 20])
    def test_episode_cut_off_on_a_well_formed_search_scores_zero(self, searches):
        # The last turn searched: the turn limit or token budget ended the episode before any answer.
        assert one(format_reward, turns=[SEARCH] * searches) == 0.0
        assert one(format_reward, turns=[ANSWER, SEARCH]) == 0.0


class TestRetry:
    @pytest.mark.parametrize(
        ("searches", "expected"), [(0, 0.0), (1, 0.35), (2, 0.5), (3, 0.65), (4, 0.8), (5, 0.95), (6, 0.95)]
    )
    def test_paper_schedule(self, searches, expected):
        assert one(make_retry_reward(), turns=[SEARCH] * searches + [ANSWER]) == expected

    @pytest.mark.parametrize(
        ("turns", "expected"),
        [
            ([SEARCH, SEARCH], 0.0),  # no final answer
            ([SEARCH, "<think>t</think><answer>a"], 0.0),  # unclosed answer
            ([ANSWER, SEARCH], 0.0),
            (["<think>t</think><search>a</search><search>b</search>", ANSWER], 0.25),  # halved: 0.5 / 2
            ([SEARCH, SEARCH, SEARCH, "<search>a</search><search>b</search>", ANSWER], 0.475),  # 0.95 / 2
            ([SEARCH, "<think>t</think><search>q</search><answer>a</answer>"], 0.5),  # the last turn's counts
            ([], 0.0),
            (None, 0.0),
        ],
    )
    def test_table(self, turns, expected):
        assert one(make_retry_reward(), turns=turns) == expected

    def test_settings_change_the_schedule(self):
        reward = make_retry_reward(base=0.0, step=0.5, cap=1, violation_factor=0.0)
        assert one(reward, turns=[SEARCH, SEARCH, ANSWER]) == 0.5
        assert one(reward, turns=["<search>a</search><search>b</search>", ANSWER]) == 0.0
        assert one(make_retry_reward(base=0.9, step=0.2), turns=[SEARCH, ANSWER]) == 1.0  # capped at 1

    @pytest.mark.parametrize(
        ("shown_per_query", "expected"),
        [
            (["no", "no", "no"], 0.65),  # every search failed: each retry counts
            (["no", "Fra Mauro was the target", "no"], 0.5),  # the third came after the answer was shown
            (
                ["fra mauro.", "no", "no"],
                0.35,
            ),  # shown at once (as the judge normalises): retries earn nothing
            (["Fra Maurois", "no", "no"], 0.65),  # whole words only
        ],
    )
    def test_after_miss_only_counts_searches_until_the_answer_was_shown(self, shown_per_query, expected):
        retrieved = [[{"shown": "unrelated"}, {"shown": shown}] for shown in shown_per_query]
        reward = make_retry_reward(after_miss_only=True)
        assert one(reward, turns=[SEARCH] * 3 + [ANSWER], retrieved=retrieved, answer="Fra Mauro") == expected
        # The paper's rule counts every search whatever the results showed.
        assert (
            one(
                make_retry_reward(after_miss_only=False),
                turns=[SEARCH] * 3 + [ANSWER],
                retrieved=retrieved,
                answer="Fra Mauro",
            )
            == 0.65
        )

    @pytest.mark.parametrize(
        ("retrieved", "answer"),
        [
            (None, "Fra Mauro"),
            ([[{"shown": "Fra Mauro"}]] * 3, None),
            ([None, "junk", [None, 3]], "Fra Mauro"),
        ],
    )
    def test_after_miss_only_without_results_or_gold_counts_every_search(self, retrieved, answer):
        reward = make_retry_reward(after_miss_only=True)
        assert one(reward, turns=[SEARCH] * 3 + [ANSWER], retrieved=retrieved, answer=answer) == 0.65

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"base": -0.1},
            {"step": math.nan},
            {"cap": 0},
            {"cap": 2.5},
            {"violation_factor": 1.5},
            {"base": "0"},
            {"after_miss_only": "yes"},
        ],
    )
    def test_bad_settings_are_refused(self, kwargs):
        with pytest.raises(ValueError, match="retry"):
            make_retry_reward(**kwargs)


GOLD = "The oxygen tank failed."


def hit(text, original=True, chunk_id="c1"):
    return {"chunk_id": chunk_id, "text": text, "original": original}


class TestEmChunk:
    @pytest.mark.parametrize(
        ("retrieved", "gold", "expected"),
        [
            ([[hit(GOLD)]], GOLD, 1.0),
            ([[hit(GOLD)]], f"\n  {GOLD}  \n", 1.0),  # surrounding whitespace stripped
            ([[hit("Before. " + GOLD + " After.")]], GOLD, 1.0),  # verbatim inside a hit
            ([[hit("other", chunk_id="c2")], [hit("x"), hit(GOLD)]], GOLD, 1.0),  # any query, any rank
            ([[hit(GOLD, original=False)]], GOLD, 0.0),  # a distractor with identical text
            ([[hit(GOLD, original="True")]], GOLD, 0.0),  # only a real True counts
            ([[{"chunk_id": "c1", "text": GOLD}]], GOLD, 0.0),  # no original flag
            ([[hit(GOLD.lower())]], GOLD, 0.0),  # exact: case matters
            ([[hit("The oxygen tank  failed.")]], GOLD, 0.0),  # exact: inner spacing matters
            ([[hit(GOLD)]], None, 0.0),  # unknown gold chunk
            ([[hit(GOLD)]], "", 0.0),
            ([], GOLD, 0.0),
            (None, GOLD, 0.0),
            ([None, "junk", [None, 3, {"text": None, "original": True}]], GOLD, 0.0),
        ],
    )
    def test_table(self, retrieved, gold, expected):
        assert one(em_chunk_reward, retrieved=retrieved, chunk_text=gold) == expected


ANALYSE_SEARCH = "<think>The results mention a fan.</think><search>tank fan</search>"
ANALYSE_ANSWER = "<think>Based on the report, a fan.</think><answer>a fan</answer>"


class TestSearchStrategy:
    @pytest.mark.parametrize(
        ("turns", "expected"),
        [
            ([SEARCH], 0.2),  # think then search
            (["<search>q</search>"], 0.0),  # no think
            (["<think> </think><search>q</search>"], 0.0),  # empty think
            (["<search>q</search><think>plan</think>"], 0.0),  # think after the search
            ([SEARCH, ANALYSE_SEARCH], 0.4),  # + one refinement
            ([SEARCH, SEARCH], 0.2),  # a plain think is no analysis
            ([SEARCH, ANALYSE_SEARCH, ANALYSE_SEARCH], 0.6),
            ([SEARCH, ANALYSE_SEARCH, ANALYSE_SEARCH, ANALYSE_SEARCH], 0.6),  # refinements capped at 0.4
            ([SEARCH, ANALYSE_SEARCH, ANALYSE_SEARCH, ANALYSE_ANSWER], 1.0),  # the whole pattern
            ([SEARCH, ANALYSE_ANSWER], 0.6),
            ([ANALYSE_ANSWER], 0.0),  # an answer from memory: no synthesis without an earlier search
            ([ANALYSE_ANSWER, ANALYSE_ANSWER], 0.0),
            (
                ["<think>t</think><search>q</search><think>Based on it</think><answer>a</answer>"],
                0.2,
            ),  # same turn
            ([ANALYSE_ANSWER, SEARCH], 0.2),  # the search came after the answer
            ([ANSWER], 0.0),  # a plain think before the answer
            (["<answer>a</answer><think>Based on it</think>"], 0.0),  # analysis after the answer
            ([ANSWER, ANALYSE_SEARCH], 0.2),  # no results before it: an opening, not a refinement
            ([SEARCH, "<think>Check the basement.</think><search>q</search>"], 0.2),  # whole words only
            ([SEARCH, "<think>RESULTS say X</think><search>q</search>"], 0.4),  # any case
            ([], 0.0),
            (None, 0.0),
            ([None, "<think>unclosed<search>q</search>"], 0.0),
        ],
    )
    def test_table(self, turns, expected):
        assert one(search_strategy_reward, turns=turns) == expected

    def test_synthesis_pays_only_after_a_search(self):
        after_search = one(search_strategy_reward, turns=[SEARCH, ANALYSE_ANSWER])
        assert after_search - one(search_strategy_reward, turns=[SEARCH, ANSWER]) == pytest.approx(0.4)
        assert one(search_strategy_reward, turns=[ANALYSE_ANSWER]) == 0.0


class TestSearchDiversity:
    @pytest.mark.parametrize(
        ("queries", "expected"),
        [
            ([], 0.0),
            (["oxygen tank"], 0.2),
            (["", "  ", "?!"], 0.0),  # empty queries are dropped
            (["oxygen tank", ""], 0.2),
            (["aaaa", "bbbb"], 0.8),  # 2 distinct (0.4) + ratio 0 (0.4)
            (["aaaa", "bbbb", "cccc"], 0.8),  # distinct part capped at 0.4
            (["oxygen tank", "oxygen tank"], 0.0),  # 0.2 + 0 - 0.2 duplicate
            (["Oxygen tank?", "oxygen   TANK"], 0.0),  # duplicate after normalisation
            (["abcdefghij", "abcdefghik"], 0.34),  # ratio 0.9: 0.4 + 0.04 - 0.1 near-duplicate
            (["aaaa", "bbbb", "aaaa"], 0.466667),  # 0.4 + 0.4 * (1 - 1/3) - 0.2
            (["aaaa"] * 4, 0.0),  # clipped at 0
        ],
    )
    def test_table(self, queries, expected):
        assert one(search_diversity_reward, queries=queries, turns=[]) == expected

    def test_without_queries_the_last_search_of_each_turn_counts(self):
        turns = [
            "<think>t</think><search>ignored</search><search>aaaa</search>",
            "<search>bbbb</search>",
            ANSWER,
        ]
        assert one(search_diversity_reward, turns=turns) == 0.8

    def test_queries_take_precedence_over_turns(self):
        assert one(search_diversity_reward, queries=["aaaa"], turns=[SEARCH, SEARCH]) == 0.2


class TestBuildRewardFuncs:
    def test_all_six_in_fixed_order_with_their_weights(self):
        funcs, weights = build_reward_funcs(dict(PAPER_WEIGHTS, retry=0))
        assert [f.__name__ for f in funcs] == list(REWARD_NAMES)
        assert weights == [4.0, 2.0, 0.0, 1.0, 1.0, 1.0]
        assert all(isinstance(w, float) for w in weights)

    def test_registry_names_match_metric_names(self):
        assert list(REWARDS) == list(REWARD_NAMES)
        assert all(func.__name__ == name for name, func in REWARDS.items())

    def test_unknown_reward_lists_the_valid_ones(self):
        with pytest.raises(ValueError, match=r"unknown reward.*retyr.*valid: correctness, format, retry"):
            build_reward_funcs(dict(PAPER_WEIGHTS, retyr=1))

    def test_missing_reward_weight_is_refused(self):
        weights = {k: v for k, v in PAPER_WEIGHTS.items() if k != "em_chunk"}
        with pytest.raises(ValueError, match=r"no weight for reward.*em_chunk"):
            build_reward_funcs(weights)

    @pytest.mark.parametrize("weight", [-1, math.nan, math.inf, True, "4"])
    def test_bad_weight_is_refused(self, weight):
        with pytest.raises(ValueError, match="weight of reward correctness"):
            build_reward_funcs(dict(PAPER_WEIGHTS, correctness=weight))

    def test_judge_and_retry_settings_are_used(self):
        judge = _RecordingJudge()
        funcs, _ = build_reward_funcs(PAPER_WEIGHTS, judge=judge, retry={"base": 0.0, "step": 0.1})
        correctness, retry = funcs[0], funcs[2]
        assert one(correctness, turns=[ANSWER], answer="anything") == 1.0 and judge.calls
        assert one(retry, turns=[SEARCH, SEARCH, ANSWER]) == 0.2

    def test_unknown_retry_setting_is_refused(self):
        with pytest.raises(ValueError, match=r"unknown retry setting.*bonus.*valid: base, step, cap"):
            build_reward_funcs(PAPER_WEIGHTS, retry={"bonus": 1})


def weighted_total(turns, **fields) -> float:
    funcs, weights = build_reward_funcs(PAPER_WEIGHTS)
    return sum(weight * one(func, turns=turns, **fields) for func, weight in zip(funcs, weights, strict=True))


def test_searching_until_cut_off_earns_less_than_answering_wrongly():
    # Three searches and no answer used to earn full format credit and about as much as answering.
    searches = [SEARCH, ANALYSE_SEARCH, "<think>Based on that, the valve.</think><search>valve</search>"]
    cut_off = weighted_total(searches, queries=["oxygen tank", "tank fan", "valve"], answer="Fra Mauro")
    wrong = weighted_total([SEARCH, ANALYSE_ANSWER], queries=["oxygen tank"], answer="Fra Mauro")
    assert cut_off < wrong < weighted_total([SEARCH, ANSWER], queries=["oxygen tank"], answer="Fra Mauro")


# What a malformed rollout can look like: every field of one row broken at once.
MALFORMED_ROWS = [
    {"turns": None, "queries": None, "retrieved": None, "answer": None, "chunk_text": None, "question": None},
    {"turns": [], "queries": [], "retrieved": [], "answer": "", "chunk_text": "", "question": ""},
    {"turns": [None, 3, ""], "queries": [None, 5], "retrieved": [[None]], "answer": 7, "chunk_text": 7},
    {"turns": ["<think><search><answer>", "</answer></search></think>"], "queries": ["<"], "retrieved": "x"},
    {
        "turns": "not a list",
        "queries": "nor this",
        "retrieved": {"a": 1},
        "answer": ["x"],
        "chunk_text": ["x"],
    },
]
GOOD_ROW = {
    "turns": [SEARCH, "<think>Based on the results: Fra Mauro.</think><search>landing site</search>", ANSWER],
    "queries": ["oxygen tank", "landing site"],
    "retrieved": [[hit("Apollo 13 was to land at Fra Mauro.")], [hit(GOLD)]],
    "answer": "Fra Mauro",
    "chunk_text": GOLD,
    "question": "Where was Apollo 13 to land?",
}
BAD_ROW = {"turns": ["I think it is Fra Mauro."], "queries": [], "retrieved": [], "answer": "Fra Mauro"}


def columns(*rows):
    """Per-row dicts to TRL's per-column kwargs (missing fields as None)."""
    names = {name for row in rows for name in row}
    return {name: [row.get(name) for row in rows] for name in names}


@pytest.mark.parametrize("name", REWARD_NAMES)
class TestEveryReward:
    @pytest.mark.parametrize("row", MALFORMED_ROWS)
    def test_malformed_output_is_scored_not_raised(self, name, row):
        assert REWARDS[name]([None], **columns(row)) == [0.0]

    def test_one_score_per_completion_in_order(self, name):
        good, bad = REWARDS[name]([None], **columns(GOOD_ROW))[0], 0.0
        assert good > 0  # the good row earns every reward
        assert REWARDS[name]([None, None], **columns(GOOD_ROW, BAD_ROW)) == [good, bad]
        assert REWARDS[name]([None, None], **columns(BAD_ROW, GOOD_ROW)) == [bad, good]

    def test_extra_kwargs_are_ignored(self, name):
        extra = {"prompts": ["p"], "completion_ids": [[1, 2]], "trainer_state": object(), "foo": ["bar"]}
        extra |= {"log_extra": print, "log_metric": print}
        row = columns(GOOD_ROW)
        assert REWARDS[name]([None], **row, **extra) == REWARDS[name]([None], **row)

    def test_reward_is_picklable(self, name):
        funcs, _ = build_reward_funcs(PAPER_WEIGHTS)
        func = funcs[REWARD_NAMES.index(name)]
        clone = pickle.loads(pickle.dumps(func))
        assert clone.__name__ == name
        assert clone([None], **columns(GOOD_ROW)) == func([None], **columns(GOOD_ROW))

    def test_a_field_of_the_wrong_length_is_a_contract_error(self, name):
        fields = {key: value * 2 for key, value in columns(GOOD_ROW).items()}
        with pytest.raises(ValueError, match="rows for 1 completions"):
            REWARDS[name]([None], **fields)


def test_conversational_completions_stand_in_for_turns():
    completion = [
        {"role": "assistant", "content": SEARCH},
        {"role": "user", "content": "<information>Result 1:\nx</information>"},
        {"role": "assistant", "content": ANSWER},
    ]
    assert format_reward([completion]) == [1.0]
    assert make_retry_reward()([completion]) == [0.35]
    assert make_correctness_reward()([completion], answer=["Fra Mauro"]) == [1.0]


def test_reward_funcs_for_params_uses_the_sections_schedule_and_judge():
    from rezero.core.config import RetrySchedule, RewardParams

    funcs = reward_funcs_for(RewardParams(retry=RetrySchedule(base=0.0, step=0.5)))
    assert [f.__name__ for f in funcs] == list(REWARD_NAMES)
    retry = funcs[REWARD_NAMES.index("retry")]
    assert one(retry, turns=[SEARCH, SEARCH, ANSWER]) == 1.0  # 0.0 + 0.5 x 2 searches
