"""netdyn.Monitor inside a plain PyTorch training loop (the README's example)."""

import torch
from torch import nn

import netdyn

data = netdyn.load_dataset("mnist5k")  # any Dataset, or the four tensors (x_train, y_train, x_test, y_test)
torch.manual_seed(0)
model = nn.Sequential(
    nn.Linear(784, 128), nn.BatchNorm1d(128), nn.ReLU(),
    nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(),
    nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(),
    nn.Linear(128, 10),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
steps = 3000
with netdyn.Monitor("runs/own-loop", data, every="log:30", total_steps=steps) as monitor:
    for step in range(1, steps + 1):
        idx = torch.randint(0, data.n_train, (100,))
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.step(model, step, train_loss=loss.item())
summary = netdyn.load_run("runs/own-loop").summary
print(f"records {summary['records']}, skipped {len(summary['skipped'])}, monitor overhead {summary['overhead']:.1%}")
print(f"test accuracy {summary['test_accuracy']:.3f}, events {[e['event'] for e in summary['events']]}")
lmap = netdyn.load_run("runs/own-loop").tables["lmap"]
last = lmap[(lmap.step == lmap.step.max()) & (lmap.split == "test")]
print("L-map test accuracy by layer at the last step:", last.accuracy.round(3).tolist())
