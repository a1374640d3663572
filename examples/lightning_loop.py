"""netdyn's Lightning callback on a small LightningModule (the README's example; pip install 'netdyn[lightning]')."""

import lightning.pytorch as pl
import torch
from torch import nn

import netdyn
from netdyn.integrations.lightning import NetdynCallback


class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(784, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


data = netdyn.load_dataset("mnist5k")
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(data.x_train, data.y_train), batch_size=100, shuffle=True
)
callback = NetdynCallback("runs/lightning", data, every="log:20")  # the Monitor's arguments
csv = pl.loggers.CSVLogger("runs/lightning-logs")  # netdyn's scalars join the module's in the trainer's loggers
trainer = pl.Trainer(max_epochs=40, callbacks=[callback], logger=csv, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
trainer.fit(Classifier(), loader)
run = netdyn.load_run("runs/lightning")
print(f"history at steps {sorted(set(run.history.step))}; quantities at {run.checkpoints()}")
print(f"test accuracy {run.summary['test_accuracy']:.3f} (batch statistics {run.summary['test_accuracy_batch']:.3f}), "
      f"monitor overhead {run.summary['overhead']:.1%}")
columns = open(f"{csv.log_dir}/metrics.csv").readline().strip().split(",")
print("logged:", ", ".join(c for c in columns if c.startswith("netdyn/") and "loss" not in c))
