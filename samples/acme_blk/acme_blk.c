// SPDX-License-Identifier: GPL-2.0
/* ACME block controller: command submission with an unwind ladder (sample, written for dmalint). */
#include <linux/blkdev.h>
#include <linux/dma-mapping.h>

#define ACME_CMD_SIZE	64
#define ACME_SENSE_SIZE	96

struct acme_cmd {
	void *cmd_buf;
	void *sense_buf;
	dma_addr_t cmd_dma;
	dma_addr_t sense_dma;
};

struct acme_host {
	struct device *dev;
	void __iomem *mmio;
};

static int acme_issue(struct acme_host *host, struct acme_cmd *cmd)
{
	int ret = -ENOMEM;

	cmd->cmd_dma = dma_map_single(host->dev, cmd->cmd_buf, ACME_CMD_SIZE, DMA_TO_DEVICE);
	if (dma_mapping_error(host->dev, cmd->cmd_dma))
		goto err_out;

	cmd->sense_dma = dma_map_single(host->dev, cmd->sense_buf, ACME_SENSE_SIZE,
					DMA_FROM_DEVICE);
	if (dma_mapping_error(host->dev, cmd->sense_dma))
		goto err_unmap_cmd;

	ret = acme_post(host, cmd);
	if (ret)
		goto err_unmap_sense;
	return 0;

err_unmap_sense:
	dma_unmap_single(host->dev, cmd->sense_dma, ACME_SENSE_SIZE, DMA_FROM_DEVICE);
err_unmap_cmd:
	dma_unmap_single(host->dev, cmd->cmd_dma, ACME_CMD_SIZE, DMA_TO_DEVICE);
err_out:
	return ret;
}

static void acme_complete(struct acme_host *host, struct acme_cmd *cmd)
{
	dma_unmap_single(host->dev, cmd->sense_dma, ACME_SENSE_SIZE, DMA_FROM_DEVICE);
	dma_unmap_single(host->dev, cmd->cmd_dma, ACME_CMD_SIZE, DMA_TO_DEVICE);
}

/* Bug: the sense buffer is unmapped with a shorter size than it was mapped with. */
static int acme_request_sense(struct acme_host *host, struct acme_cmd *cmd)
{
	dma_addr_t dma;
	int ret;

	dma = dma_map_single(host->dev, cmd->sense_buf, ACME_SENSE_SIZE, DMA_FROM_DEVICE);
	if (dma_mapping_error(host->dev, dma))
		return -ENOMEM;
	ret = acme_poll(host, lower_32_bits(dma));
	dma_unmap_single(host->dev, dma, ACME_CMD_SIZE, DMA_FROM_DEVICE);
	return ret;
}
