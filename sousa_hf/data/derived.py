"""Adding computed columns without rewriting the stored audio."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from datasets import Dataset, Features, IterableDataset
from datasets.fingerprint import Hasher


def add_columns(
    dataset: Dataset | IterableDataset,
    function: Callable[[dict], dict],
    input_columns: Sequence[str],
    features: Features,
) -> Dataset | IterableDataset:
    """Add the columns `function` computes from a batch of `input_columns`.

    A `Dataset` reads only the input columns and appends the results in memory, so a 96 GB audio
    table is not copied as `map` would; an `IterableDataset` computes them lazily while streaming.
    `features` gives the type of each new column.
    """
    if isinstance(dataset, IterableDataset):
        new_features = None
        if dataset.features is not None:
            new_features = dataset.features.copy()
            new_features.update(features)

        def add(batch: dict) -> dict:
            batch.update(function({column: batch[column] for column in input_columns}))
            return batch

        return dataset.map(add, batched=True, features=new_features)

    # A filtered Dataset is a view (an indices mapping) over its table; add_column would first
    # rewrite the whole table in view order (audio included), so the columns are computed for the
    # full table and the view is put back on top.
    indices = dataset._indices
    table_dataset = Dataset(dataset.data, info=dataset.info.copy(), split=dataset.split)
    inputs = table_dataset.select_columns(list(input_columns)).with_format("arrow")[:].to_pydict()
    for name, values in function(inputs).items():
        if name in table_dataset.column_names:
            table_dataset = table_dataset.remove_columns(name)
        table_dataset = table_dataset.add_column(name, values, feature=features[name])
    # The view's own fingerprint (it reflects the filters) goes into the result's: two filtered views of a
    # table must not share one, or a cache made under that fingerprint (`map`) would serve the wrong rows.
    result = Dataset(table_dataset.data, info=table_dataset.info, split=dataset.split, indices_table=indices,
                     fingerprint=Hasher.hash((dataset._fingerprint, table_dataset._fingerprint)))
    columns = dataset._format_columns  # None (all columns, new ones included) unlike `.format`'s list
    result.set_format(dataset._format_type, columns, dataset._output_all_columns, **dataset._format_kwargs)
    return result
