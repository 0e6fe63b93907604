"""The listening study of the paper's Table 2: build a blind study (`make`), collect ratings in a
browser (`server` + `store`), and compute the table with its tests (`report`)."""
