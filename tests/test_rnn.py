"""Recurrent layers (issue 23, part 5): nn.RNN, nn.LSTM, nn.GRU and their cells against PyTorch's from the
same weights (every option: layers, bidirectional, batch_first, bias, proj_size, relu, initial states,
unbatched inputs), outputs, final states and gradients of the input, the states and every parameter;
gradients and second derivatives against finite differences; the character-level training loop of
PyTorch's tutorials side by side; the errors.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
from numpy.testing import assert_allclose

import tapegrad as tg
from tapegrad import nn

TOL = dict(rtol=1e-11, atol=1e-12)


def _pair(cls: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Any, Any, Any]:
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn, cls)(*args, **kwargs).double()
    ours = getattr(nn, cls)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    sd = theirs.state_dict()
    assert list(ours.state_dict()) == list(sd)
    assert [tuple(v.shape) for v in sd.values()] == [v.shape for v in ours.state_dict().values()]
    ours.load_state_dict({k: v.numpy() for k, v in sd.items()})
    return torch, ours, theirs


def _flat(out: Any) -> List[Any]:
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


LAYERS: List[Tuple[str, Tuple[Any, ...], Dict[str, Any], Tuple[int, ...]]] = [
    ("LSTM", (4, 6), {}, (5, 3, 4)),
    ("LSTM", (4, 6, 2), {"bidirectional": True}, (5, 3, 4)),
    ("LSTM", (4, 6, 2), {"batch_first": True, "bias": False}, (3, 5, 4)),
    ("LSTM", (4, 6, 2), {"proj_size": 3, "bidirectional": True}, (5, 3, 4)),
    ("LSTM", (4, 6), {}, (5, 4)),  # unbatched
    ("GRU", (4, 6), {}, (5, 3, 4)),
    ("GRU", (4, 5, 3), {"bidirectional": True, "batch_first": True}, (2, 6, 4)),
    ("GRU", (4, 6), {"bias": False}, (5, 4)),
    ("RNN", (4, 6), {}, (5, 3, 4)),
    ("RNN", (4, 6, 2), {"nonlinearity": "relu", "bidirectional": True}, (5, 3, 4)),
    ("RNN", (4, 6), {"batch_first": True}, (3, 1, 4)),
]


@pytest.mark.parametrize("cls,args,kwargs,shape", LAYERS)
@pytest.mark.parametrize("initial", [False, True])
def test_layers_against_pytorch(cls: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], shape: Tuple[int, ...],
                                initial: bool) -> None:
    torch, ours, theirs = _pair(cls, args, kwargs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    tx, ox = torch.tensor(x, requires_grad=True), tg.tensor(x, requires_grad=True)
    states: List[Tuple[Any, Any]] = []
    if initial:
        d = 2 if theirs.bidirectional else 1
        n = [] if len(shape) == 2 else [shape[0] if theirs.batch_first else shape[1]]
        out_size = theirs.proj_size or theirs.hidden_size
        sizes = [out_size] + ([theirs.hidden_size] if cls == "LSTM" else [])
        for size in sizes:
            h = rng.standard_normal([theirs.num_layers * d] + n + [size])
            states.append((torch.tensor(h, requires_grad=True), tg.tensor(h, requires_grad=True)))
    if not states:
        targs, oargs = (tx,), (ox,)
    elif cls == "LSTM":
        targs, oargs = (tx, (states[0][0], states[1][0])), (ox, (states[0][1], states[1][1]))
    else:
        targs, oargs = (tx, states[0][0]), (ox, states[0][1])
    t_out, o_out = _flat(theirs(*targs)), _flat(ours(*oargs))
    assert len(t_out) == len(o_out)
    loss_t, loss_o = 0, 0
    for k, (a, b) in enumerate(zip(o_out, t_out)):
        assert a.shape == tuple(b.shape), (k, a.shape, tuple(b.shape))
        assert_allclose(a.numpy(), b.detach().numpy(), **TOL, err_msg=f"output {k}")
        g = rng.standard_normal(a.shape)
        loss_o = loss_o + (a * tg.tensor(g)).sum()
        loss_t = loss_t + (b * torch.tensor(g)).sum()
    loss_o.backward()
    loss_t.backward()
    assert_allclose(ox.grad.numpy(), tx.grad.numpy(), **TOL)
    for t, o in states:
        assert_allclose(o.grad.numpy(), t.grad.numpy(), **TOL)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_allclose(p.grad.numpy(), tp.grad.numpy(), **TOL, err_msg=name)


@pytest.mark.parametrize("cls,kwargs", [("LSTMCell", {}), ("GRUCell", {}), ("RNNCell", {}),
                                        ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {"bias": False})])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_against_pytorch(cls: str, kwargs: Dict[str, Any], batched: bool) -> None:
    """Three steps of a cell, each feeding the next, from a given state and from none."""
    torch, ours, theirs = _pair(cls, (4, 5), kwargs)
    rng = np.random.default_rng(1)
    lead = [3] if batched else []
    xs = [rng.standard_normal(lead + [4]) for _ in range(3)]
    ox = [tg.tensor(x, requires_grad=True) for x in xs]
    tx = [torch.tensor(x, requires_grad=True) for x in xs]
    oh: Any = None
    th: Any = None
    for k in range(3):
        oh, th = ours(ox[k], oh), theirs(tx[k], th)
        for a, b in zip(_flat(oh), _flat(th)):
            assert_allclose(a.numpy(), b.detach().numpy(), **TOL, err_msg=f"step {k}")
    g = rng.standard_normal(lead + [5])
    (_flat(oh)[0] * tg.tensor(g)).sum().backward()
    (_flat(th)[0] * torch.tensor(g)).sum().backward()
    for a, b in zip(ox, tx):
        assert_allclose(a.grad.numpy(), b.grad.numpy(), **TOL)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_allclose(p.grad.numpy(), tp.grad.numpy(), **TOL, err_msg=name)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_gradients_and_second_derivatives_against_finite_differences(cls: str) -> None:
    """d loss / d input and a Hessian-vector product through create_graph, against central differences."""
    tg.manual_seed(0)
    layer = getattr(nn, cls)(2, 3, 2, bidirectional=True)
    rng = np.random.default_rng(2)
    x0, g, v = rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 2, 6)), rng.standard_normal((3, 2, 2))

    def loss_at(x: np.ndarray) -> float:
        with tg.no_grad():
            return float((layer(tg.tensor(x))[0] * tg.tensor(g)).sum().item())

    def grad_at(x: np.ndarray, create_graph: bool = False) -> Any:
        xt = tg.tensor(x, requires_grad=True)
        return tg.autograd.grad((layer(xt)[0] * tg.tensor(g)).sum(), [xt], create_graph=create_graph)[0], xt

    grad, xt = grad_at(x0, create_graph=True)
    h, fd = 1e-6, np.zeros_like(x0)
    for idx in np.ndindex(x0.shape):
        up, dn = x0.copy(), x0.copy()
        up[idx] += h
        dn[idx] -= h
        fd[idx] = (loss_at(up) - loss_at(dn)) / (2 * h)
    assert_allclose(grad.numpy(), fd, rtol=1e-6, atol=1e-8)
    hv = tg.autograd.grad((grad * tg.tensor(v)).sum(), [xt])[0]
    expected = (grad_at(x0 + h * v)[0].numpy() - grad_at(x0 - h * v)[0].numpy()) / (2 * h)
    assert_allclose(hv.numpy(), expected, rtol=1e-5, atol=1e-7)


def char_rnn(torch_nn: Any, vocab: int = 11, hidden: int = 16) -> Any:
    """The shape of PyTorch's character-level tutorials: an embedding, a two-layer LSTM, a linear head."""

    class CharRNN(torch_nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch_nn.Embedding(vocab, 8)
            self.lstm = torch_nn.LSTM(8, hidden, num_layers=2, batch_first=True)
            self.head = torch_nn.Linear(hidden, vocab)

        def forward(self, x: Any) -> Any:
            out, _ = self.lstm(self.embed(x))
            return self.head(out)

    return CharRNN()


def test_a_char_lstm_trains_as_pytorchs() -> None:
    torch = pytest.importorskip("torch")
    theirs, ours = char_rnn(torch.nn).double(), char_rnn(nn)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    opt, topt = tg.optim.Adam(ours.parameters(), lr=0.01), torch.optim.Adam(theirs.parameters(), lr=0.01)
    rng = np.random.default_rng(3)
    for step in range(5):
        seq = rng.integers(0, 11, (4, 9))
        x, y = seq[:, :-1], seq[:, 1:]
        loss = nn.functional.cross_entropy(ours(tg.tensor(x)).reshape(-1, 11), y.reshape(-1))
        tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)).reshape(-1, 11), torch.tensor(y).reshape(-1))
        assert_allclose(loss.item(), tloss.item(), rtol=1e-10, err_msg=f"step {step}")
        for o in (opt, topt):
            o.zero_grad()
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()


def test_dropout_between_layers_and_init() -> None:
    tg.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=3, dropout=0.5)
    x = tg.randn(5, 2, 3)
    lstm.eval()
    a, b = lstm(x)[0].numpy(), lstm(x)[0].numpy()
    assert (a == b).all()  # no dropout in eval mode
    lstm.train()
    assert not np.allclose(lstm(x)[0].numpy(), lstm(x)[0].numpy())  # different masks
    bound = 1 / np.sqrt(4)
    for p in lstm.parameters():
        assert np.abs(p.numpy()).max() <= bound
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.GRU(3, 4, dropout=0.2)


@pytest.mark.parametrize("call,error,message", [
    (lambda: nn.LSTM(3, 4)(tg.zeros(2, 3, 4, 5)), ValueError, "LSTM: Expected input to be 2D or 3D, got 4D instead"),
    (lambda: nn.LSTM(3, 4)(tg.zeros(5, 2, 2)), ValueError,
     "LSTM: input.size(-1) must be equal to input_size. Expected 3, got 2"),
    (lambda: nn.GRU(3, 4)(tg.zeros(5, 2, 3), tg.zeros(1, 3, 4)), ValueError,
     "GRU: expected hidden size (1, 2, 4), got (1, 3, 4)"),
    (lambda: nn.LSTM(3, 4)(tg.zeros(5, 2, 3), tg.zeros(1, 2, 4)), TypeError, "LSTM: hx must be a tuple (h_0, c_0)"),
    (lambda: nn.LSTM(3, 4)(tg.zeros(5, 2, 3, dtype=tg.float32)), TypeError,
     "must have one dtype"),
    (lambda: nn.GRU(3, 4, proj_size=2), ValueError, "proj_size argument is only supported for LSTM"),
    (lambda: nn.LSTM(3, 4, proj_size=4), ValueError, "proj_size has to be smaller than hidden_size"),
    (lambda: nn.RNN(3, 4, nonlinearity="sigmoid"), ValueError, "Unknown nonlinearity 'sigmoid'"),
    (lambda: nn.LSTM(3, 0), ValueError, "hidden_size must be greater than zero"),
    (lambda: nn.LSTM(3, 4, dropout=1.5), ValueError, "dropout should be a number in range [0, 1]"),
    (lambda: nn.LSTMCell(3, 4)(tg.zeros(2, 3), tg.zeros(2, 4)), TypeError, "LSTMCell: hx must be a tuple (h, c)"),
    (lambda: nn.GRUCell(3, 4)(tg.zeros(2, 3), tg.zeros(3, 4)), ValueError,
     "GRUCell: hidden state has shape (3, 4), expected (2, 4)"),
    (lambda: nn.RNNCell(3, 4)(tg.zeros(2, 2)), ValueError, "RNNCell: input has inconsistent input_size: got 2"),
])
def test_errors_name_the_problem(call: Callable[[], Any], error: type, message: str) -> None:
    with pytest.raises(error) as e:
        call()
    assert message in str(e.value)
