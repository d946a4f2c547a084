package main

import (
	"strconv"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

type (
	mqttClient  = mqtt.Client
	mqttMessage = mqtt.Message
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
