// SPDX-License-Identifier: GPL-2.0
/* ACME 10/100 Ethernet: a sample driver for dmalint (written for the project). */
#include <linux/module.h>
#include <linux/etherdevice.h>
#include "acme_eth.h"

static netdev_tx_t acme_start_xmit(struct sk_buff *skb, struct net_device *ndev)
{
	struct acme_priv *priv = netdev_priv(ndev);
	unsigned int entry = priv->tx_head % ACME_RING_SIZE;
	struct acme_desc *desc = &priv->tx_ring[entry];
	dma_addr_t mapping;

	mapping = dma_map_single(priv->dev, skb->data, skb->len, DMA_TO_DEVICE);
	if (dma_mapping_error(priv->dev, mapping)) {
		dev_kfree_skb_any(skb);
		ndev->stats.tx_dropped++;
		return NETDEV_TX_OK;
	}

	priv->tx_buf[entry].skb = skb;
	dma_unmap_addr_set(&priv->tx_buf[entry], mapping, mapping);
	dma_unmap_len_set(&priv->tx_buf[entry], len, skb->len);
	desc->addr = cpu_to_le64(mapping);
	desc->len = cpu_to_le32(skb->len);
	wmb();
	writel(++priv->tx_head, priv->regs + 0x20);
	return NETDEV_TX_OK;
}

/* Refill one receive slot.  Bug: the mapping is never checked. */
static int acme_rx_refill(struct acme_priv *priv, unsigned int entry)
{
	struct sk_buff *skb;
	dma_addr_t dma;

	skb = netdev_alloc_skb_ip_align(priv->ndev, ACME_RX_BUF_LEN);
	if (!skb)
		return -ENOMEM;
	dma = dma_map_single(priv->dev, skb->data, ACME_RX_BUF_LEN, DMA_FROM_DEVICE);
	priv->rx_skb[entry] = skb;
	priv->rx_dma[entry] = dma;
	priv->rx_ring[entry].addr = cpu_to_le64(dma);
	return 0;
}

/* Send a one-off configuration frame and wait for the device to take it. */
static int acme_send_config(struct acme_priv *priv, void *frame, size_t len)
{
	dma_addr_t dma;
	int ret;

	dma = dma_map_single(priv->dev, frame, len, DMA_TO_DEVICE);
	if (dma_mapping_error(priv->dev, dma))
		return -ENOMEM;

	writel(lower_32_bits(dma), priv->regs + 0x40);
	writel(upper_32_bits(dma), priv->regs + 0x44);
	ret = acme_wait_idle(priv);
	if (ret)
		return ret;	/* Bug: leaves the frame mapped */

	dma_unmap_single(priv->dev, dma, len, DMA_TO_DEVICE);
	return 0;
}

/* Loopback self-test.  Bug: the error path unmaps with the wrong direction. */
static int acme_selftest(struct acme_priv *priv, void *buf)
{
	dma_addr_t dma;
	int err;

	dma = dma_map_single(priv->dev, buf, ACME_RX_BUF_LEN, DMA_FROM_DEVICE);
	if (dma_mapping_error(priv->dev, dma))
		return -ENOMEM;

	err = acme_run_loopback(priv);
	if (err)
		goto err_unmap;

	dma_unmap_single(priv->dev, dma, ACME_RX_BUF_LEN, DMA_FROM_DEVICE);
	return 0;

err_unmap:
	dma_unmap_single(priv->dev, dma, ACME_RX_BUF_LEN, DMA_TO_DEVICE);
	return err;
}
