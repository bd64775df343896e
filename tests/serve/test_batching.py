"""The micro-batcher: concurrent requests share one model call, each with its own filters; max_batch=1 serves one
at a time; a full queue is a 503; a request whose handler is cancelled is left out of the batch."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from detect import Detector
from detect.data.sources.reader import Frame
from detect.serve.batching import Batcher, filtered
from detect.serve.upload import Options, RequestError
from detect.structures import Classes, Result


def frames(count: int) -> list[Frame]:
    rng = np.random.default_rng(1)
    return [Frame(0, "upload", rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), 0.0) for _ in range(count)]


async def submit_all(batcher: Batcher, inputs: list[Frame], options: list[Options]) -> list[tuple[Result, int]]:
    return await asyncio.gather(*(batcher.submit(frame, option) for frame, option in zip(inputs, options)))


@pytest.mark.parametrize("max_batch", [4, 1])
def test_concurrent_requests_share_a_model_call_up_to_max_batch(tiny_detector: Detector, max_batch: int) -> None:
    inputs = frames(4)
    alone = [tiny_detector.predict_frames([frame])[0] for frame in inputs]
    options = [Options(0.01), Options(0.01, {1}), Options(0.01, None, 2), Options(float(np.median(alone[3].scores)))]
    batcher = Batcher(tiny_detector, max_batch, max_wait_ms=2000 if max_batch > 1 else 0, max_queue=8)
    batcher.start()
    try:
        answers = asyncio.run(submit_all(batcher, inputs, options))
    finally:
        batcher.stop()
    assert [size for _, size in answers] == [max_batch] * 4
    assert batcher.metrics.text().count(b"detect_batch_size_count 4.0" if max_batch == 1 else
                                        b"detect_batch_size_count 1.0") == 1
    for (result, _), expected, option in zip(answers, alone, options):
        want = filtered(expected, option)
        np.testing.assert_allclose(result.scores, want.scores, atol=1e-4)  # batched: padded, the same up to rounding
        np.testing.assert_array_equal(result.labels, want.labels)
        assert result.ms["queue"] >= 0 and result.ms["model"] > 0


def test_filtered_keeps_the_requests_threshold_labels_and_top_scores() -> None:
    result = Result(np.arange(20, dtype=np.float32).reshape(5, 4), np.array([0.9, 0.2, 0.7, 0.8, 0.6], np.float32),
                    np.array([1, 2, 1, 2, 1]), Classes(["cat", "dog"], [17, 42]), np.zeros((4, 4, 3), np.uint8))
    kept = filtered(result, Options(0.5, {1}, 2))
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7]) and kept.names == ["cat", "cat"]
    assert kept.boxes.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]
    assert filtered(result, Options(0.65)).category_ids == [17, 17, 42]


def test_a_full_queue_is_a_503_and_a_cancelled_request_is_left_out(tiny_detector: Detector) -> None:
    batcher = Batcher(tiny_detector, max_batch=2, max_wait_ms=0, max_queue=1)  # no worker yet: the queue fills

    async def scenario() -> None:
        waiting = asyncio.ensure_future(batcher.submit(frames(1)[0], Options(0.01)))
        await asyncio.sleep(0.01)
        with pytest.raises(RequestError, match="busy") as refused:
            await batcher.submit(frames(1)[0], Options(0.01))
        assert refused.value.status == 503 and batcher.queue_length() == 1
        waiting.cancel()  # its client left
        await asyncio.sleep(0.01)
        batcher.start()
        result, size = await batcher.submit(frames(1)[0], Options(0.01))
        assert size == 1 and batcher.queue_length() == 0
    asyncio.run(scenario())
    batcher.stop()
    assert not [thread for thread in threading.enumerate() if thread.name == "batcher"]
