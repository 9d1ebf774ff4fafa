// SPDX-License-Identifier: GPL-2.0
/*
 * A small made-up network driver used as the seed of the robustness tests: it is mutated at
 * random (lines deleted, duplicated, swapped, bytes inserted, truncated) and the analyser must
 * survive every mutant.  It has a few DMA API bugs so that findings exist to be checked.
 */
#include <linux/dma-mapping.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>

#define TOY_RING_SIZE	64
#define TOY_BUF_LEN	2048

struct toy_desc {
	__le64 addr;
	__le32 len;
	__le32 flags;
} __packed;

struct toy_priv {
	struct device *dev;
	void __iomem *base;
	struct toy_desc *ring;
	dma_addr_t ring_dma;
	struct sk_buff *skbs[TOY_RING_SIZE];
	dma_addr_t bufs[TOY_RING_SIZE];
	struct list_head pending;
	unsigned int head;
};

static int toy_map_rx(struct toy_priv *priv, struct sk_buff *skb, unsigned int i)
{
	dma_addr_t addr;

	addr = dma_map_single(priv->dev, skb->data, TOY_BUF_LEN, DMA_FROM_DEVICE);
	if (dma_mapping_error(priv->dev, addr))
		return -ENOMEM;
	priv->bufs[i] = addr;
	priv->ring[i].addr = cpu_to_le64(addr);
	return 0;
}

static int toy_xmit_bad(struct toy_priv *priv, struct sk_buff *skb)
{
	dma_addr_t addr = dma_map_single(priv->dev, skb->data, skb->len, DMA_TO_DEVICE);

	writel(lower_32_bits(addr), priv->base + 0x10);
	return 0;
}

static int toy_submit(struct toy_priv *priv, dma_addr_t addr, unsigned int len);

static int toy_send_leaky(struct toy_priv *priv, void *buf, unsigned int len)
{
	dma_addr_t addr;
	int ret;

	addr = dma_map_single(priv->dev, buf, len, DMA_TO_DEVICE);
	if (dma_mapping_error(priv->dev, addr))
		return -ENOMEM;
	ret = toy_submit(priv, addr, len);
	if (ret)
		return ret;
	dma_unmap_single(priv->dev, addr, len, DMA_TO_DEVICE);
	return 0;
}

static int toy_send_sizes(struct toy_priv *priv, void *buf, unsigned int len)
{
	dma_addr_t addr;

	addr = dma_map_single(priv->dev, buf, len, DMA_TO_DEVICE);
	if (dma_mapping_error(priv->dev, addr))
		return -ENOMEM;
	if (toy_submit(priv, addr, len))
		goto err_unmap;
	dma_unmap_single(priv->dev, addr, len, DMA_TO_DEVICE);
	return 0;

err_unmap:
	dma_unmap_single(priv->dev, addr, TOY_BUF_LEN, DMA_FROM_DEVICE);
	return -EIO;
}

static void toy_clean_rx(struct toy_priv *priv)
{
	struct sk_buff *skb, *tmp;
	unsigned int i;

	for (i = 0; i < TOY_RING_SIZE; i++) {
		if (!priv->skbs[i])
			continue;
		dma_unmap_single(priv->dev, priv->bufs[i], TOY_BUF_LEN, DMA_FROM_DEVICE);
		dev_kfree_skb(priv->skbs[i]);
		priv->skbs[i] = NULL;
	}
	list_for_each_entry_safe(skb, tmp, &priv->pending, list) {
		list_del(&skb->list);
		kfree_skb(skb);
	}
}

#ifdef CONFIG_TOY_DEBUG
static void toy_dump(struct toy_priv *priv)
{
	dev_info(priv->dev, "head %u\n", priv->head);
}
#else
static inline void toy_dump(struct toy_priv *priv) { }
#endif

static int toy_double(struct toy_priv *priv, void *buf)
{
	dma_addr_t a = dma_map_single(priv->dev, buf, 64, DMA_BIDIRECTIONAL);

	if (dma_mapping_error(priv->dev, a))
		return -ENOMEM;
	dma_unmap_single(priv->dev, a, 64, DMA_BIDIRECTIONAL);
	toy_dump(priv);
	dma_unmap_single(priv->dev, a, 64, DMA_BIDIRECTIONAL);
	return 0;
}
