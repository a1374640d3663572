"""The framework's quantities on a plain nn.Module CNN of your own (the README's "Your own model")."""

import torch
import torch.nn.functional as F
from torch import nn

import netdyn
import netdyn.prune


class SmallCNN(nn.Module):
    """Two conv blocks (conv, batch norm, ReLU, 2x2 max-pool) and a linear head: nothing netdyn-specific."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width)
        self.fc1 = nn.Linear(2 * width * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


data = netdyn.load_dataset("mnist5k")  # images stored flat, fed to the model as (1, 28, 28)
torch.manual_seed(0)
model = SmallCNN()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
for epoch in range(5):
    model.train()
    for idx in torch.randperm(data.n_train).split(100):
        loss = F.cross_entropy(model(data.x_train[idx].reshape(-1, 1, 28, 28)), data.y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
model.eval()

analysis = netdyn.analyze(model, data, netdyn.AnalysisConfig(basins=False))
test = analysis.tables["lmap"].query("split == 'test'")
print(test[["layer", "cut", "accuracy", "tail"]].to_string(index=False))
lp = analysis.tables["lp"].query("split == 'test'")
print(lp[["layer", "cut", "accuracy", "features"]].to_string(index=False))
census = analysis.tables["neuron_mode_census"]
print(census[["layer", "cut", "opm", "npm", "inactive"]].round(3).to_string(index=False))
print(analysis.tables["rpd_summary"][["layer", "cut", "gradient", "top_mass"]].round(3).to_string(index=False))
analysis.save("runs/own-model")  # tables and analysis.json
analysis.plot("runs/own-model")  # figures/*.png
analysis.to_html("runs/own-model/report.html")

try:  # the earliest cut whose affine tail, as one Linear, keeps the test accuracy within half a point
    pruned = netdyn.prune.prune_network(model, data)
    chosen = pruned.scan[pruned.scan["chosen"]].iloc[0]
    print(f"pruned at layer {pruned.layer} ({chosen['cut']}): {netdyn.prune.parameter_count(model):,} -> "
          f"{netdyn.prune.parameter_count(pruned.net):,} parameters, test accuracy {pruned.network_accuracy:.3f} "
          f"-> {chosen['pruned_test_accuracy']:.3f}")
except netdyn.NetdynError as error:
    print(f"prune: {error}")
