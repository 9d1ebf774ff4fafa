"""Small C drivers shared by the reporter and hook tests (each with the finding it gives)."""

# Maps without dma_mapping_error() and stores the handle: DMA001 at 10:2 (tab = column 1).
UNCHECKED_C = """\
#include <linux/dma-mapping.h>

struct foo_desc { dma_addr_t addr; };

int foo_xmit(struct device *dev, struct foo_desc *desc, void *buf, size_t len)
{
	dma_addr_t addr;

	addr = dma_map_single(dev, buf, len, DMA_TO_DEVICE);
	desc->addr = addr;
	return 0;
}
"""

# Checks the mapping, then fails without unmapping: DMA003 (a warning) at 13:10.
LEAK_C = """\
#include <linux/dma-mapping.h>

struct foo_desc { dma_addr_t addr; };

int foo_send(struct device *dev, struct foo_desc *desc, void *buf, size_t len)
{
	dma_addr_t addr;

	addr = dma_map_single(dev, buf, len, DMA_TO_DEVICE);
	if (dma_mapping_error(dev, addr))
		return -ENOMEM;
	if (len > 4096)
		return -EINVAL;
	desc->addr = addr;
	return 0;
}
"""
